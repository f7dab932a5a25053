package api

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/codeexec/codeexec/shared/messages"
)

// fitPage puts views (newest first) into reply so that its JSON encoding stays within
// limit bytes. Every record's metadata is placed first; the large fields (stdout, stderr,
// files) then take what is left, record by record: whole while they fit, else cut (the
// record says truncated). Records whose metadata alone does not fit are left out and the
// reply says more.
func fitPage(reply messages.UsageReply, views []messages.ExecutionRecord, limit int) (messages.UsageReply, error) {
	reply.Records = []messages.ExecutionRecord{}
	reply.More = true // sized at its largest
	size, err := encodedLen(reply)
	if err != nil {
		return reply, err
	}
	budget := limit - size
	bare := make([]int, 0, len(views))
	for _, v := range views {
		n, err := encodedLen(bareOf(v))
		if err != nil {
			return reply, err
		}
		n++ // the comma before it
		if n > budget {
			break
		}
		budget -= n
		bare = append(bare, n)
	}
	reply.More = len(bare) < len(views)
	for i, n := range bare {
		full, err := encodedLen(views[i])
		if err != nil {
			return reply, err
		}
		if full+1 <= n+budget {
			reply.Records = append(reply.Records, views[i])
			budget -= full + 1 - n
			continue
		}
		r, size, err := cut(views[i], n-1+budget)
		if err != nil {
			return reply, err
		}
		reply.Records = append(reply.Records, r)
		budget -= size + 1 - n
	}
	return reply, nil
}

// bareOf is v without its large fields, marked truncated (its largest bare form).
func bareOf(v messages.ExecutionRecord) messages.ExecutionRecord {
	v.Stdout, v.Stderr, v.Files, v.Truncated = "", "", nil, true
	return v
}

// cut returns v with stdout, stderr and then files (whole ones, in order) kept while the
// record's encoding fits in room bytes, and its size. room is at least v's bare size.
func cut(v messages.ExecutionRecord, room int) (messages.ExecutionRecord, int, error) {
	r := bareOf(v)
	size, err := encodedLen(r)
	if err != nil {
		return r, 0, err
	}
	for _, f := range []struct {
		dst  *string
		full string
	}{{&r.Stdout, v.Stdout}, {&r.Stderr, v.Stderr}} {
		if f.full == "" || size >= room {
			continue
		}
		if size, err = fitString(&r, f.dst, f.full, room); err != nil {
			return r, 0, err
		}
	}
	for _, file := range v.Files {
		r.Files = append(r.Files, file)
		n, err := encodedLen(r)
		if err != nil {
			return r, 0, err
		}
		if n > room {
			r.Files = r.Files[:len(r.Files)-1]
			break
		}
		size = n
	}
	if len(r.Files) == 0 {
		r.Files = nil
	}
	return r, size, nil
}

// fitString sets *dst to the longest prefix of full (cut between runes) with which r
// still encodes within room bytes, and returns r's size. It measures the prefix rune by
// rune as encoding/json writes it, checks the result with one encoding, and falls back
// to a search by encoding should the two ever disagree.
func fitString(r *messages.ExecutionRecord, dst *string, full string, room int) (int, error) {
	sizeWith := func(n int) (int, error) {
		*dst = full[:n]
		return encodedLen(*r)
	}
	first := nextRune(full, 0)
	withFirst, err := sizeWith(first)
	if err != nil {
		return 0, err
	}
	if withFirst > room {
		return sizeWith(0)
	}
	// The record's size with the field present but its text empty.
	base := withFirst - encodedRunesLen(full[:first])
	n, size := 0, base
	for n < len(full) {
		next := nextRune(full, n)
		grown := size + encodedRunesLen(full[n:next])
		if grown > room {
			break
		}
		n, size = next, grown
	}
	if got, err := sizeWith(n); err != nil || got <= room {
		return got, err
	}
	return searchString(sizeWith, full, room)
}

// encodedRunesLen is the length of s inside a JSON string as encoding/json writes it
// (HTML-safe: <, > and & escaped; invalid bytes written as \ufffd).
func encodedRunesLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// searchString finds the longest prefix length of full (between runes) for which
// sizeWith stays within room, by bisection.
func searchString(sizeWith func(int) (int, error), full string, room int) (int, error) {
	// A prefix encodes to at least its length, so none longer than room fits.
	lo, hi := 0, min(len(full), room)
	for lo < hi {
		mid := runeStart(full, lo+(hi-lo+1)/2)
		if mid <= lo {
			// No rune boundary between lo and the midpoint: try the next one up.
			mid = nextRune(full, lo)
			if mid > hi {
				break
			}
		}
		n, err := sizeWith(mid)
		if err != nil {
			return 0, err
		}
		if n <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return sizeWith(lo)
}

// runeStart moves i back to the start of the rune it falls in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// nextRune is the index after the rune starting at i.
func nextRune(s string, i int) int {
	_, n := utf8.DecodeRuneInString(s[i:])
	return i + max(n, 1)
}

func encodedLen(v any) (int, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode usage reply: %w", err)
	}
	return len(b), nil
}
