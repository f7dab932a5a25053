package accounts_test

import (
	"context"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// TestProjectSaveRefusesFilesThatCannotCoexist: a file and a directory of one name, or
// one name twice, cannot be unpacked; create and update refuse them as invalid input.
func TestProjectSaveRefusesFilesThatCannotCoexist(t *testing.T) {
	e := start(t)
	v := messages.Version
	owner, err := register(context.Background(), e.nc, "cyd@example.com", "cyd", "a long password")
	if err != nil {
		t.Fatal(err)
	}
	main := messages.File{Filename: "main.py", Code: "print(1)", IsEntryPoint: true}
	p, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectCreate,
		messages.ProjectRequest{V: v, UserID: owner.UserID, Name: "ok", Language: "python", Files: []messages.File{main}})
	if err != nil {
		t.Fatalf("create a valid project: %v", err)
	}
	cases := []struct {
		name  string
		files []messages.File
		want  string
	}{
		{"file and directory", []messages.File{main, {Filename: "a", Code: "x"}, {Filename: "a/b.py", Code: "y"}}, "is also the directory of"},
		{"duplicate name", []messages.File{main, {Filename: "main.py", Code: "z"}}, "given twice"},
	}
	for _, tc := range cases {
		for _, subject := range []string{subjects.ProjectCreate, subjects.ProjectUpdate} {
			t.Run(tc.name+" "+subject, func(t *testing.T) {
				req := messages.ProjectRequest{V: v, UserID: owner.UserID, Name: "bad", Language: "python", Files: tc.files}
				if subject == subjects.ProjectUpdate {
					req.ProjectID = p.Project.ID
				}
				_, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subject, req)
				if !rpc.IsCode(err, rpc.CodeInvalidInput) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want invalid_input saying %q", err, tc.want)
				}
			})
		}
	}
	g, err := rpcCall[messages.ProjectRequest, messages.ProjectReply](t, e.nc, subjects.ProjectGet,
		messages.ProjectRequest{V: v, UserID: owner.UserID, ProjectID: p.Project.ID})
	if err != nil || g.Project.Name != "ok" || len(g.Project.Files) != 1 {
		t.Fatalf("after refused updates: got %+v %v, want the project unchanged", g.Project, err)
	}
}
