package accounts

import (
	"context"
	"errors"

	"github.com/codeexec/codeexec/accounts/internal/projects"
	"github.com/codeexec/codeexec/accounts/internal/users"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
)

// projectError maps the project store's refusals to rpc errors.
func projectError(err error) error {
	var invalid *projects.InvalidError
	switch {
	case errors.As(err, &invalid):
		return rpc.Errorf(rpc.CodeInvalidInput, "%s", invalid.Reason)
	case errors.Is(err, messages.ErrCodeTooLarge):
		return rpc.Errorf(rpc.CodeInvalidInput, "%s", err.Error())
	case errors.Is(err, projects.ErrNotFound):
		return rpc.Errorf(rpc.CodeNotFound, "no such project")
	case errors.Is(err, projects.ErrTooMany):
		return rpc.Errorf(rpc.CodeConflict, "%s", err.Error())
	}
	return err
}

func needUser(userID string) error {
	if userID == "" {
		return rpc.Errorf(rpc.CodeInvalidInput, "userId is required")
	}
	return nil
}

func (s *Service) createProject(ctx context.Context, req messages.ProjectRequest) (messages.ProjectReply, error) {
	if err := needUser(req.UserID); err != nil {
		return messages.ProjectReply{}, err
	}
	p, err := s.projects.Create(ctx, req.UserID, projects.Content{Name: req.Name, Language: req.Language, Files: req.Files})
	if err != nil {
		return messages.ProjectReply{}, projectError(err)
	}
	return messages.ProjectReply{V: messages.Version, Project: p}, nil
}

func (s *Service) listProjects(ctx context.Context, req messages.ProjectListRequest) (messages.ProjectListReply, error) {
	if err := needUser(req.UserID); err != nil {
		return messages.ProjectListReply{}, err
	}
	list, err := s.projects.List(ctx, req.UserID)
	if err != nil {
		return messages.ProjectListReply{}, err
	}
	return messages.ProjectListReply{V: messages.Version, Projects: list}, nil
}

func (s *Service) getProject(ctx context.Context, req messages.ProjectRequest) (messages.ProjectReply, error) {
	p, err := s.projects.Get(ctx, req.UserID, req.ProjectID)
	if err != nil {
		return messages.ProjectReply{}, projectError(err)
	}
	return messages.ProjectReply{V: messages.Version, Project: p}, nil
}

func (s *Service) updateProject(ctx context.Context, req messages.ProjectRequest) (messages.ProjectReply, error) {
	p, err := s.projects.Update(ctx, req.UserID, req.ProjectID, projects.Content{Name: req.Name, Language: req.Language, Files: req.Files})
	if err != nil {
		return messages.ProjectReply{}, projectError(err)
	}
	return messages.ProjectReply{V: messages.Version, Project: p}, nil
}

func (s *Service) deleteProject(ctx context.Context, req messages.ProjectRequest) (messages.Empty, error) {
	if err := s.projects.Delete(ctx, req.UserID, req.ProjectID); err != nil {
		return messages.Empty{}, projectError(err)
	}
	return messages.Empty{V: messages.Version}, nil
}

func (s *Service) shareProject(ctx context.Context, req messages.ProjectRequest) (messages.ShareReply, error) {
	id, err := s.projects.Share(ctx, req.UserID, req.ProjectID)
	if err != nil {
		return messages.ShareReply{}, projectError(err)
	}
	return messages.ShareReply{V: messages.Version, ShareID: id}, nil
}

func (s *Service) unshareProject(ctx context.Context, req messages.ProjectRequest) (messages.Empty, error) {
	if err := s.projects.Unshare(ctx, req.UserID, req.ProjectID); err != nil {
		return messages.Empty{}, projectError(err)
	}
	return messages.Empty{V: messages.Version}, nil
}

// getShared is the read-only view of a shared project: the owner's username, never their
// id or email.
func (s *Service) getShared(ctx context.Context, req messages.SharedRequest) (messages.SharedReply, error) {
	sh, err := s.projects.GetShared(ctx, req.ShareID)
	if err != nil {
		return messages.SharedReply{}, projectError(err)
	}
	owner, err := s.users.Get(ctx, sh.OwnerID)
	if errors.Is(err, users.ErrNotFound) {
		return messages.SharedReply{}, rpc.Errorf(rpc.CodeNotFound, "no such project")
	}
	if err != nil {
		return messages.SharedReply{}, err
	}
	p := sh.Project
	return messages.SharedReply{V: messages.Version, ShareID: sh.ShareID, Name: p.Name, Language: p.Language,
		Files: p.Files, Owner: owner.Username, UpdatedAt: p.UpdatedAt}, nil
}

// forkShared copies a shared project into the caller's own projects.
func (s *Service) forkShared(ctx context.Context, req messages.SharedRequest) (messages.ProjectReply, error) {
	if err := needUser(req.UserID); err != nil {
		return messages.ProjectReply{}, err
	}
	sh, err := s.projects.GetShared(ctx, req.ShareID)
	if err != nil {
		return messages.ProjectReply{}, projectError(err)
	}
	src := sh.Project
	p, err := s.projects.Create(ctx, req.UserID, projects.Content{Name: src.Name, Language: src.Language, Files: src.Files})
	if err != nil {
		return messages.ProjectReply{}, projectError(err)
	}
	s.log.Info("project forked", "user_id", req.UserID, "project_id", p.ID)
	return messages.ProjectReply{V: messages.Version, Project: p}, nil
}
