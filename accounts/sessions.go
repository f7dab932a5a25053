package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/codeexec/codeexec/accounts/internal/sessions"
	"github.com/codeexec/codeexec/accounts/internal/users"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// login checks an email and password and opens a session. The refusal does not say
// whether the email exists, and takes one bcrypt comparison either way.
func (s *Service) login(ctx context.Context, req messages.LoginRequest) (messages.LoginReply, error) {
	u, err := s.users.Authenticate(ctx, req.Email, req.Password)
	if errors.Is(err, users.ErrBadCredentials) {
		s.m.logins.WithLabelValues("failed").Inc()
		return messages.LoginReply{}, rpc.Errorf(rpc.CodeUnauthorized, "wrong email or password")
	}
	if err != nil {
		s.m.logins.WithLabelValues("error").Inc()
		return messages.LoginReply{}, fmt.Errorf("authenticate: %w", err)
	}
	token, sess, err := s.sessions.Create(ctx, u.ID)
	if err != nil {
		s.m.logins.WithLabelValues("error").Inc()
		return messages.LoginReply{}, err
	}
	s.m.logins.WithLabelValues("ok").Inc()
	s.log.Info("user logged in", "user_id", u.ID)
	return messages.LoginReply{V: messages.Version, UserID: u.ID, Token: token, ExpiresAt: sess.ExpiresAt}, nil
}

func (s *Service) verifySession(ctx context.Context, req messages.SessionVerifyRequest) (messages.SessionVerifyReply, error) {
	sess, err := s.sessions.Verify(ctx, req.Token)
	if errors.Is(err, sessions.ErrInvalid) {
		s.m.sessionChecks.WithLabelValues("invalid").Inc()
		return messages.SessionVerifyReply{V: messages.Version}, nil
	}
	if err != nil {
		s.m.sessionChecks.WithLabelValues("error").Inc()
		return messages.SessionVerifyReply{}, err
	}
	s.m.sessionChecks.WithLabelValues("valid").Inc()
	return messages.SessionVerifyReply{V: messages.Version, Valid: true, UserID: sess.UserID, ExpiresAt: sess.ExpiresAt}, nil
}

// logout deletes the session and tells every edge to forget it.
func (s *Service) logout(ctx context.Context, req messages.LogoutRequest) (messages.Empty, error) {
	hash, err := s.sessions.End(ctx, req.Token)
	if err != nil {
		return messages.Empty{}, err
	}
	s.publishRevoked(subjects.SessionRevoked, messages.CredentialRevoked{V: messages.Version, Hash: hash})
	return messages.Empty{V: messages.Version}, nil
}

func (s *Service) user(ctx context.Context, req messages.UserRequest) (messages.UserReply, error) {
	u, err := s.users.Get(ctx, req.UserID)
	if errors.Is(err, users.ErrNotFound) {
		return messages.UserReply{}, rpc.Errorf(rpc.CodeNotFound, "no such user")
	}
	if err != nil {
		return messages.UserReply{}, err
	}
	return messages.UserReply{V: messages.Version, UserID: u.ID, Email: u.Email, Username: u.Username}, nil
}

// publishRevoked tells every edge (core NATS) to drop a credential from its cache. A lost
// event is bounded by the edges' cache TTL, and an edge that reconnects flushes its cache.
func (s *Service) publishRevoked(subject string, ev messages.CredentialRevoked) {
	body, err := json.Marshal(ev)
	if err == nil {
		err = s.nc.Publish(subject, body)
	}
	if err == nil {
		err = s.nc.Flush()
	}
	if err != nil {
		s.log.Warn("publish revocation; edges forget it when their cache entry expires", "subject", subject, "err", err)
	}
}

// sweepSessions deletes expired sessions every interval until ctx ends.
func (s *Service) sweepSessions(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.sessions.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweep expired sessions", "err", err)
		} else if n > 0 {
			s.log.Info("expired sessions deleted", "count", n)
		}
	}
}
