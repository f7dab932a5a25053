package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codeexec/codeexec/shared/messages"
)

func TestFitPage(t *testing.T) {
	rec := func(i int, stdout, stderr string, files ...messages.File) messages.ExecutionRecord {
		exit := 0
		return messages.ExecutionRecord{JobID: fmt.Sprintf("job-%03d", i), Language: "python", Status: messages.StatusSucceeded,
			WallTimeMs: 42, ExitCode: &exit, Region: "local", PriceMicros: 10_000,
			CreatedAt: time.Date(2030, 1, 1, 0, 0, i, 0, time.UTC), Stdout: stdout, Stderr: stderr, Files: files}
	}
	many := func(n int, stdout, stderr string) []messages.ExecutionRecord {
		var out []messages.ExecutionRecord
		for i := range n {
			out = append(out, rec(i, stdout, stderr, messages.File{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}))
		}
		return out
	}
	const limit = messages.MaxUsageReplyBytes
	tests := []struct {
		name          string
		views         []messages.ExecutionRecord
		limit         int
		wantRecords   int
		wantTruncated int
		wantMore      bool
		wantFilled    bool // the cut strings leave the reply nearly full
	}{
		{name: "small page, untouched", views: many(100, "hi\n", ""), limit: limit, wantRecords: 100},
		{name: "one record of 3 MiB", views: many(1, strings.Repeat("x", 3<<20), "err"), limit: limit, wantRecords: 1, wantTruncated: 1, wantFilled: true},
		{name: "20 records of 800 KiB", views: many(20, strings.Repeat("o", 400<<10), strings.Repeat("e", 400<<10)),
			limit: limit, wantRecords: 20, wantTruncated: 19, wantFilled: true},
		{name: "output that grows when encoded", views: many(3, strings.Repeat("<é>\n\x01", 300<<10), ""),
			limit: limit, wantRecords: 3, wantTruncated: 3, wantFilled: true},
		{name: "invalid UTF-8", views: many(2, strings.Repeat("\xff", 2<<20), ""), limit: limit, wantRecords: 2, wantTruncated: 2, wantFilled: true},
		{name: "files only", views: []messages.ExecutionRecord{rec(0, "", "",
			messages.File{Filename: "a.py", Code: strings.Repeat("a", 600<<10)}, messages.File{Filename: "b.py", Code: strings.Repeat("b", 600<<10)})},
			limit: limit, wantRecords: 1, wantTruncated: 1},
		{name: "not even the metadata fits", views: many(100, "", ""), limit: 4 << 10, wantMore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := fitPage(messages.UsageReply{V: messages.Version, Page: 1, PageSize: len(tt.views)}, tt.views, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(reply)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tt.limit {
				t.Fatalf("reply is %d bytes, over the limit of %d", len(b), tt.limit)
			}
			truncated := 0
			for i, r := range reply.Records {
				v := tt.views[i]
				if r.JobID != v.JobID {
					t.Fatalf("record %d: got %s, want %s (order kept)", i, r.JobID, v.JobID)
				}
				if !r.Truncated {
					if r.Stdout != v.Stdout || r.Stderr != v.Stderr || len(r.Files) != len(v.Files) {
						t.Fatalf("record %d not marked truncated but cut", i)
					}
					continue
				}
				truncated++
				if !strings.HasPrefix(v.Stdout, r.Stdout) || !strings.HasPrefix(v.Stderr, r.Stderr) || len(r.Files) > len(v.Files) {
					t.Fatalf("record %d: the cut fields are not prefixes of the originals", i)
				}
			}
			if tt.wantMore {
				if !reply.More || len(reply.Records) == 0 || len(reply.Records) >= len(tt.views) {
					t.Fatalf("got %d of %d records, more %v; want some, not all, and more", len(reply.Records), len(tt.views), reply.More)
				}
				return
			}
			if len(reply.Records) != tt.wantRecords || truncated != tt.wantTruncated || reply.More {
				t.Fatalf("got %d records, %d truncated, more %v; want %d, %d, false", len(reply.Records), truncated, reply.More, tt.wantRecords, tt.wantTruncated)
			}
			if tt.wantFilled && len(b) < tt.limit-16<<10 {
				t.Fatalf("reply is %d bytes: the cut left more than 16 KiB of the %d unused", len(b), tt.limit)
			}
		})
	}
}

// The measure fitString trusts agrees with encoding/json.
func TestEncodedRunesLen(t *testing.T) {
	for _, s := range []string{"", "hi", "a\"b\\c", "\b\f\n\r\t", "\x00\x01\x1f\x7f", "<a href='x'>&amp;</a>",
		"é€😀", "\xff\xfe", "\xe2\x82", "\u2028\u2029", "ok\xc3"} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := encodedRunesLen(s), len(b)-2; got != want {
			t.Errorf("encodedRunesLen(%q): got %d, want %d (%s)", s, got, want, b)
		}
	}
}
