package api

import (
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/codeexec/codeexec/shared/excerpt"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// projectInput is the body of POST /api/projects and PUT /api/projects/:id.
type projectInput struct {
	Name     *string         `json:"name"`
	Language string          `json:"language"`
	Files    []messages.File `json:"files"`
}

// validate checks a project's fields as execution would, and resolves the language.
func (s *Server) validateProject(in *projectInput) (messages.ProjectRequest, error) {
	if in.Name == nil {
		return messages.ProjectRequest{}, newError(http.StatusBadRequest, "invalid_input", "name is required")
	}
	name := strings.TrimSpace(*in.Name)
	if n := utf8.RuneCountInString(name); n < 1 || n > messages.MaxProjectNameRunes {
		return messages.ProjectRequest{}, newError(http.StatusBadRequest, "invalid_input", "name must be 1 to %d characters", messages.MaxProjectNameRunes)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return messages.ProjectRequest{}, newError(http.StatusBadRequest, "invalid_input", "name must not hold control characters")
	}
	if in.Language == "" {
		return messages.ProjectRequest{}, newError(http.StatusBadRequest, "invalid_input", "language is required")
	}
	lang, err := s.catalog.Find(in.Language)
	if err != nil {
		return messages.ProjectRequest{}, unknownLanguage(err)
	}
	if err := checkFiles(in.Files); err != nil {
		return messages.ProjectRequest{}, err
	}
	return messages.ProjectRequest{V: messages.Version, Name: name, Language: lang.Name, Files: in.Files}, nil
}

// checkFiles applies the execution rules for files: 413 above the code size limit.
func checkFiles(files []messages.File) error {
	if err := messages.ValidateFiles(files); err != nil {
		if errors.Is(err, messages.ErrCodeTooLarge) {
			return newError(http.StatusRequestEntityTooLarge, "code_too_large", "%s", err.Error())
		}
		return newError(http.StatusBadRequest, "invalid_files", "%s", err.Error())
	}
	return nil
}

// projectID is the :id parameter, or a 404 when it cannot be one of our ids.
func projectID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !idLike(id) {
		return "", newError(http.StatusNotFound, "not_found", "no project %s", excerpt.Quote(id))
	}
	return id, nil
}

func (s *Server) projectCall(c *fiber.Ctx, subject string, req messages.ProjectRequest) (messages.Project, error) {
	reply, err := rpc.Call[messages.ProjectRequest, messages.ProjectReply](c.UserContext(), s.nc, subject, req)
	if err != nil {
		return messages.Project{}, projectRPCError(err)
	}
	return reply.Project, nil
}

func projectRPCError(err error) error {
	if rpc.IsCode(err, rpc.CodeNotFound) {
		return newError(http.StatusNotFound, "not_found", "no such project")
	}
	return fromRPC(err, "accounts")
}

// createProject answers POST /api/projects {name, language, files} → 201 project.
func (s *Server) createProject(c *fiber.Ctx) error {
	var in projectInput
	if err := decodeStrict(c.Body(), &in); err != nil {
		return err
	}
	req, err := s.validateProject(&in)
	if err != nil {
		return err
	}
	req.UserID = userID(c)
	p, err := s.projectCall(c, subjects.ProjectCreate, req)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(p)
}

// listProjects answers GET /api/projects: the caller's projects, without files.
func (s *Server) listProjects(c *fiber.Ctx) error {
	reply, err := rpc.Call[messages.ProjectListRequest, messages.ProjectListReply](c.UserContext(), s.nc, subjects.ProjectList,
		messages.ProjectListRequest{V: messages.Version, UserID: userID(c)})
	if err != nil {
		return fromRPC(err, "accounts")
	}
	list := reply.Projects
	if list == nil {
		list = []messages.Project{}
	}
	return c.JSON(fiber.Map{"projects": list})
}

// getProject answers GET /api/projects/:id for its owner; 404 to anyone else.
func (s *Server) getProject(c *fiber.Ctx) error {
	id, err := projectID(c)
	if err != nil {
		return err
	}
	p, err := s.projectCall(c, subjects.ProjectGet, messages.ProjectRequest{V: messages.Version, UserID: userID(c), ProjectID: id})
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// updateProject answers PUT /api/projects/:id {name, language, files}.
func (s *Server) updateProject(c *fiber.Ctx) error {
	id, err := projectID(c)
	if err != nil {
		return err
	}
	var in projectInput
	if err := decodeStrict(c.Body(), &in); err != nil {
		return err
	}
	req, err := s.validateProject(&in)
	if err != nil {
		return err
	}
	req.UserID, req.ProjectID = userID(c), id
	p, err := s.projectCall(c, subjects.ProjectUpdate, req)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// deleteProject answers DELETE /api/projects/:id → 204; its share link dies with it.
func (s *Server) deleteProject(c *fiber.Ctx) error {
	return s.projectAction(c, subjects.ProjectDelete)
}

// unshareProject answers DELETE /api/projects/:id/share → 204; 404 when not shared.
func (s *Server) unshareProject(c *fiber.Ctx) error {
	return s.projectAction(c, subjects.ProjectUnshare)
}

func (s *Server) projectAction(c *fiber.Ctx, subject string) error {
	id, err := projectID(c)
	if err != nil {
		return err
	}
	if _, err := rpc.Call[messages.ProjectRequest, messages.Empty](c.UserContext(), s.nc, subject,
		messages.ProjectRequest{V: messages.Version, UserID: userID(c), ProjectID: id}); err != nil {
		return projectRPCError(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// shareProject answers POST /api/projects/:id/share → {shareId}, the same on every call.
func (s *Server) shareProject(c *fiber.Ctx) error {
	id, err := projectID(c)
	if err != nil {
		return err
	}
	reply, err := rpc.Call[messages.ProjectRequest, messages.ShareReply](c.UserContext(), s.nc, subjects.ProjectShare,
		messages.ProjectRequest{V: messages.Version, UserID: userID(c), ProjectID: id})
	if err != nil {
		return projectRPCError(err)
	}
	return c.JSON(fiber.Map{"shareId": reply.ShareID})
}

func shareID(c *fiber.Ctx) (string, error) {
	id := c.Params("shareId")
	if !idLike(id) {
		return "", newError(http.StatusNotFound, "not_found", "no such shared project")
	}
	return id, nil
}

// getShared answers GET /api/shared/:shareId without authentication: a read-only view
// with the owner's username only.
func (s *Server) getShared(c *fiber.Ctx) error {
	id, err := shareID(c)
	if err != nil {
		return err
	}
	reply, err := rpc.Call[messages.SharedRequest, messages.SharedReply](c.UserContext(), s.nc, subjects.SharedGet,
		messages.SharedRequest{V: messages.Version, ShareID: id})
	if rpc.IsCode(err, rpc.CodeNotFound) {
		return newError(http.StatusNotFound, "not_found", "no such shared project")
	}
	if err != nil {
		return fromRPC(err, "accounts")
	}
	return c.JSON(fiber.Map{"shareId": reply.ShareID, "name": reply.Name, "language": reply.Language,
		"files": reply.Files, "owner": reply.Owner, "updatedAt": reply.UpdatedAt})
}

// forkShared answers POST /api/shared/:shareId/fork → 201: a copy in the caller's projects.
func (s *Server) forkShared(c *fiber.Ctx) error {
	id, err := shareID(c)
	if err != nil {
		return err
	}
	reply, err := rpc.Call[messages.SharedRequest, messages.ProjectReply](c.UserContext(), s.nc, subjects.SharedFork,
		messages.SharedRequest{V: messages.Version, ShareID: id, UserID: userID(c)})
	if rpc.IsCode(err, rpc.CodeNotFound) {
		return newError(http.StatusNotFound, "not_found", "no such shared project")
	}
	if err != nil {
		return fromRPC(err, "accounts")
	}
	return c.Status(http.StatusCreated).JSON(reply.Project)
}

// projectExecuteRequest is the body of POST /api/projects/:id/execute.
type projectExecuteRequest struct {
	Stdin        string           `json:"stdin"`
	Args         []string         `json:"args"`
	Wait         *bool            `json:"wait"`
	SaveMetric   *bool            `json:"saveMetric"`
	Region       string           `json:"region"`
	RegionPolicy string           `json:"regionPolicy"`
	Limits       *messages.Limits `json:"limits"`
}

// executeProject answers POST /api/projects/:id/execute: the saved files run through the
// same path as POST /api/v2/execute, with the job's projectId set.
func (s *Server) executeProject(c *fiber.Ctx) error {
	id, err := projectID(c)
	if err != nil {
		return err
	}
	var in projectExecuteRequest
	if len(c.Body()) > 0 {
		if err := decodeStrict(c.Body(), &in); err != nil {
			return err
		}
	}
	p, err := s.projectCall(c, subjects.ProjectGet, messages.ProjectRequest{V: messages.Version, UserID: userID(c), ProjectID: id})
	if err != nil {
		return err
	}
	req := executeRequest{Language: p.Language, Files: p.Files, Stdin: in.Stdin, Args: in.Args, ProjectID: p.ID,
		SaveMetric: in.SaveMetric, Wait: in.Wait, Region: in.Region, RegionPolicy: in.RegionPolicy, Limits: in.Limits}
	if req.Files == nil {
		req.Files = []messages.File{}
	}
	return s.run(c, &req, 2)
}
