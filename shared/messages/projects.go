package messages

import "time"

// Project limits.
const (
	MaxProjectNameRunes = 100
	MaxProjectsPerUser  = 1000
)

// Project is a user's saved program. Files follow the rules of ValidateFiles.
type Project struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Language  string    `json:"language"`
	Files     []File    `json:"files,omitempty"`
	ShareID   string    `json:"shareId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ProjectRequest addresses accounts' project subjects (create, get, update, delete,
// share, unshare). UserID is the caller, who must own ProjectID; another user's project
// is the rpc error not_found. Name, Language and Files are read by create and update only;
// Language is the catalog's canonical name (the edge resolves aliases).
type ProjectRequest struct {
	V         int    `json:"v"`
	UserID    string `json:"userId"`
	ProjectID string `json:"projectId,omitempty"`
	Name      string `json:"name,omitempty"`
	Language  string `json:"language,omitempty"`
	Files     []File `json:"files,omitempty"`
}

// ProjectReply carries one project with its files.
type ProjectReply struct {
	V       int     `json:"v"`
	Project Project `json:"project"`
}

// ProjectListRequest asks accounts (subjects.ProjectList) for a user's projects.
type ProjectListRequest struct {
	V      int    `json:"v"`
	UserID string `json:"userId"`
}

// ProjectListReply lists a user's projects without their files, newest change first.
type ProjectListReply struct {
	V        int       `json:"v"`
	Projects []Project `json:"projects"`
}

// ShareReply is a project's share id (subjects.ProjectShare); sharing twice gives the same.
type ShareReply struct {
	V       int    `json:"v"`
	ShareID string `json:"shareId"`
}

// SharedRequest reads (subjects.SharedGet, no user) or forks (subjects.SharedFork, UserID
// the caller) a shared project.
type SharedRequest struct {
	V       int    `json:"v"`
	ShareID string `json:"shareId"`
	UserID  string `json:"userId,omitempty"`
}

// SharedReply is the read-only view of a shared project: the owner's username only,
// never their id or email.
type SharedReply struct {
	V         int       `json:"v"`
	ShareID   string    `json:"shareId"`
	Name      string    `json:"name"`
	Language  string    `json:"language"`
	Files     []File    `json:"files"`
	Owner     string    `json:"owner"`
	UpdatedAt time.Time `json:"updatedAt"`
}
