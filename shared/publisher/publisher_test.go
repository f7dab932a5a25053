package publisher

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
	"github.com/codeexec/codeexec/shared/rpc"
	"github.com/codeexec/codeexec/shared/subjects"
)

// offline is a Publisher without a connection: enough for Job, which does no I/O.
func offline(t *testing.T, opts Options) *Publisher {
	t.Helper()
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &Publisher{opts: opts, waiters: map[string]*Pending{}}
}

func TestJobFromRequest(t *testing.T) {
	p := offline(t, Options{Region: "eu-1"})
	job, err := p.Job(JobRequest{UserID: "u1", Language: "py", Code: "print(1)", Args: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Language != "python" || job.Region != "eu-1" || job.V != messages.Version {
		t.Errorf("got language %q region %q v %d, want python, eu-1, %d", job.Language, job.Region, job.V, messages.Version)
	}
	if len(job.Files) != 1 || job.Files[0].Filename != "main.py" || !job.Files[0].IsEntryPoint {
		t.Errorf("got files %+v, want one entry point main.py", job.Files)
	}
	if !subjects.Token(job.JobID) || len(job.JobID) != 32 {
		t.Errorf("got job id %q, want 32 hex digits", job.JobID)
	}
	if job.Limits != (messages.Limits{}) {
		t.Errorf("got limits %+v, want none (the language's defaults)", job.Limits)
	}
	if job.SubmittedAt.IsZero() || job.PriceMicros != 0 || job.Notify != "" {
		t.Errorf("got submittedAt %v price %d notify %q, want a time, and no price or notify before Submit", job.SubmittedAt, job.PriceMicros, job.Notify)
	}

	job, err = p.Job(JobRequest{JobID: "my-job_1", UserID: "u1", Language: "python", Code: "x", Region: "us",
		Limits: messages.Limits{RunTimeMs: 500}})
	if err != nil {
		t.Fatal(err)
	}
	if job.JobID != "my-job_1" || job.Region != "us" {
		t.Errorf("got job id %q region %q, want the request's", job.JobID, job.Region)
	}
	if job.Limits.RunTimeMs != 500 || job.Limits.MemoryBytes == 0 {
		t.Errorf("got limits %+v, want run time 500 and the other defaults filled in", job.Limits)
	}
}

func TestInvalidRequestsAreRefused(t *testing.T) {
	p := offline(t, Options{})
	ok := JobRequest{UserID: "u1", Language: "python", Code: "print(1)"}
	tests := []struct {
		name  string
		edit  func(*JobRequest)
		cause error // also wrapped, when not nil
		want  string
	}{
		{"no user", func(r *JobRequest) { r.UserID = "" }, nil, "userId"},
		{"no language", func(r *JobRequest) { r.Language = "" }, nil, "language"},
		{"unknown language", func(r *JobRequest) { r.Language = "cobol" }, languages.ErrUnknown, "cobol"},
		{"no code", func(r *JobRequest) { r.Code = "" }, nil, "code or files"},
		{"code and files", func(r *JobRequest) { r.Files = []messages.File{{Filename: "a.py", IsEntryPoint: true}} }, nil, "not both"},
		{"bad file name", func(r *JobRequest) {
			r.Code, r.Files = "", []messages.File{{Filename: "../a.py", IsEntryPoint: true}}
		}, nil, `".." segment`},
		{"two entry points", func(r *JobRequest) {
			r.Code, r.Files = "", []messages.File{{Filename: "a.py", IsEntryPoint: true}, {Filename: "b.py", IsEntryPoint: true}}
		}, nil, "2 entry points"},
		{"code too large", func(r *JobRequest) { r.Code = strings.Repeat("x", messages.MaxCodeBytes+1) }, messages.ErrCodeTooLarge, "code too large"},
		{"stdin too large", func(r *JobRequest) { r.Stdin = strings.Repeat("x", messages.MaxStdinBytes+1) }, nil, "stdin"},
		{"NUL in an arg", func(r *JobRequest) { r.Args = []string{"a\x00"} }, nil, "NUL"},
		{"project id too long", func(r *JobRequest) { r.ProjectID = strings.Repeat("p", 65) }, nil, "projectId"},
		{"region not a token", func(r *JobRequest) { r.Region = "eu.west" }, nil, "region"},
		{"job id not a token", func(r *JobRequest) { r.JobID = "a.b" }, nil, "jobId"},
		{"limit below the minimum", func(r *JobRequest) { r.Limits.MemoryBytes = 1 }, languages.ErrBelowMinimum, "memoryBytes"},
		{"negative limit", func(r *JobRequest) { r.Limits.Pids = -1 }, languages.ErrBelowMinimum, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			_, err := p.Job(req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("got %v, want ErrInvalidRequest", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("got %v, want it to wrap %v", err, tc.cause)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for _, o := range []Options{{Region: "a.b"}, {NotifyOwner: "edge.1"}, {NotifyOwner: "*"}} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("options %+v: got no error, want a refusal", o)
		}
	}
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Region != DefaultRegion || o.NotifyOwner != DefaultNotifyOwner || o.PollInterval != DefaultPollInterval || o.Languages == nil {
		t.Errorf("got %+v, want the defaults", o)
	}
}

func TestRefusedErrorMatchesItsCode(t *testing.T) {
	tests := []struct {
		code string
		want error
	}{
		{rpc.CodeInsufficientFunds, ErrInsufficientFunds},
		{rpc.CodeNotFound, ErrNoWallet},
		{rpc.CodeHoldClosed, ErrHoldClosed},
	}
	for _, tc := range tests {
		err := fmt.Errorf("submit: %w", &RefusedError{JobID: "j", Code: tc.code, Message: "no"})
		if !errors.Is(err, tc.want) {
			t.Errorf("code %s: got no match with %v", tc.code, tc.want)
		}
		if !rpc.IsCode(err, tc.code) {
			t.Errorf("code %s: rpc.IsCode does not match", tc.code)
		}
		for _, other := range []error{ErrInsufficientFunds, ErrNoWallet, ErrHoldClosed, ErrInvalidRequest} {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("code %s: matches %v too", tc.code, other)
			}
		}
	}
}
