package accounts

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/codeexec/codeexec/accounts/internal/keys"
	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// MaxKeyNameRunes bounds a key's name.
const MaxKeyNameRunes = 100

func keyInfo(k keys.Key) messages.KeyInfo {
	return messages.KeyInfo{KeyID: k.KeyID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt.UTC()}
}

func (s *Service) createKey(ctx context.Context, req messages.KeyCreateRequest) (messages.KeyCreateReply, error) {
	if req.UserID == "" {
		return messages.KeyCreateReply{}, rpc.Errorf(rpc.CodeInvalidInput, "userId is required")
	}
	name := strings.TrimSpace(req.Name)
	if utf8.RuneCountInString(name) > MaxKeyNameRunes || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return messages.KeyCreateReply{}, rpc.Errorf(rpc.CodeInvalidInput, "name must be at most %d characters, none of them control characters", MaxKeyNameRunes)
	}
	k, secret, err := s.keys.CreateLimited(ctx, req.UserID, name)
	if errors.Is(err, keys.ErrTooMany) {
		return messages.KeyCreateReply{}, rpc.Errorf(rpc.CodeConflict, "%s", err.Error())
	}
	if err != nil {
		return messages.KeyCreateReply{}, err
	}
	s.log.Info("api key created", "user_id", req.UserID, "key_id", k.KeyID)
	return messages.KeyCreateReply{V: messages.Version, Key: keyInfo(k), APIKey: secret}, nil
}

func (s *Service) listKeys(ctx context.Context, req messages.KeyListRequest) (messages.KeyListReply, error) {
	live, err := s.keys.List(ctx, req.UserID)
	if err != nil {
		return messages.KeyListReply{}, err
	}
	out := make([]messages.KeyInfo, len(live))
	for i, l := range live {
		out[i] = keyInfo(l.Key)
		out[i].LastUsedAt = l.LastUsedAt
	}
	return messages.KeyListReply{V: messages.Version, Keys: out}, nil
}

// revokeKey inserts the key's revocation, then tells every edge to drop it. A key already
// revoked is not found, but the event goes out again in case the first one was lost.
// The reply carries the key's hash so that the asking edge drops it from its cache at once.
func (s *Service) revokeKey(ctx context.Context, req messages.KeyRevokeRequest) (messages.CredentialRevoked, error) {
	k, err := s.keys.Revoke(ctx, req.UserID, req.KeyID)
	event := messages.CredentialRevoked{V: messages.Version, Hash: k.Hash, KeyID: k.KeyID}
	switch {
	case errors.Is(err, keys.ErrNotFound):
		return messages.CredentialRevoked{}, rpc.Errorf(rpc.CodeNotFound, "no api key %s", excerpt.Quote(req.KeyID))
	case errors.Is(err, keys.ErrAlreadyRevoked):
		s.publishRevoked(subjects.KeyRevoked, event)
		return messages.CredentialRevoked{}, rpc.Errorf(rpc.CodeNotFound, "no api key %s", excerpt.Quote(req.KeyID))
	case err != nil:
		return messages.CredentialRevoked{}, err
	}
	s.publishRevoked(subjects.KeyRevoked, event)
	s.m.revocations.Inc()
	s.log.Info("api key revoked", "user_id", req.UserID, "key_id", k.KeyID)
	return event, nil
}

// noteUse queues a write of the key's last use when one is due; it never blocks a check.
func (s *Service) noteUse(keyID string) {
	if !s.usage.Due(keyID) {
		return
	}
	select {
	case s.used <- keyID:
	default: // the writer is behind: this use goes unrecorded, which is harmless
	}
}

// writeUsage writes queued key uses until ctx ends.
func (s *Service) writeUsage(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.used:
			if err := s.usage.Write(ctx, id); err != nil && ctx.Err() == nil {
				s.log.Warn("record key use", "key_id", id, "err", err)
			}
		}
	}
}
