package messages_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codeexec/codeexec/shared/messages"
)

// readSchema decodes one of the embedded schema files as a generic JSON document.
func readSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := messages.Schemas.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// TestSchemasMatchGoTypes holds each schema to its Go type: the properties of every object
// are exactly the struct's json fields, required exactly those always encoded (no
// omitempty), and each property's JSON type the one encoding/json writes for the field.
func TestSchemasMatchGoTypes(t *testing.T) {
	for _, tc := range []struct {
		file string
		typ  reflect.Type
	}{
		{messages.JobSchemaFile, reflect.TypeFor[messages.Job]()},
		{messages.ResultSchemaFile, reflect.TypeFor[messages.Result]()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			root := readSchema(t, tc.file)
			if got := root["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema: got %v, want draft 2020-12", got)
			}
			for _, p := range compareType(root, root, tc.typ, "") {
				t.Error(p)
			}
		})
	}
}

// TestSchemaComparisonCatchesDrift proves the comparison above fails when the Go type
// gains a field the schema lacks, or loses one the schema still has.
func TestSchemaComparisonCatchesDrift(t *testing.T) {
	root := readSchema(t, messages.JobSchemaFile)
	job := reflect.TypeFor[messages.Job]()
	var fields []reflect.StructField
	for i := range job.NumField() {
		fields = append(fields, job.Field(i))
	}
	added := append(slices.Clone(fields), reflect.StructField{Name: "Priority", Type: reflect.TypeFor[int](), Tag: `json:"priority"`})
	if p := compareType(root, root, reflect.StructOf(added), ""); !containsText(p, `"priority"`) {
		t.Errorf("a field added to Job: got problems %q, want one naming priority", p)
	}
	var removed []reflect.StructField
	for _, f := range fields {
		if f.Name != "Stdin" {
			removed = append(removed, f)
		}
	}
	if p := compareType(root, root, reflect.StructOf(removed), ""); !containsText(p, `"stdin"`) {
		t.Errorf("a field removed from Job: got problems %q, want one naming stdin", p)
	}
	retyped := slices.Clone(fields)
	for i := range retyped {
		if retyped[i].Name == "PriceMicros" {
			retyped[i].Type = reflect.TypeFor[string]()
		}
	}
	if p := compareType(root, root, reflect.StructOf(retyped), ""); !containsText(p, "priceMicros") {
		t.Errorf("a field of Job retyped: got problems %q, want one naming priceMicros", p)
	}
}

func containsText(problems []string, s string) bool {
	for _, p := range problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// jsonField is a struct field as encoding/json sees it.
type jsonField struct {
	name     string
	typ      reflect.Type
	optional bool // omitempty or omitzero: not always encoded
}

func jsonFields(typ reflect.Type) ([]jsonField, []string) {
	var out []jsonField
	var problems []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous {
			problems = append(problems, fmt.Sprintf("%s.%s: embedded fields are not compared; extend the test", typ, f.Name))
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		optional := false
		for _, o := range strings.Split(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		out = append(out, jsonField{name: name, typ: f.Type, optional: optional})
	}
	return out, problems
}

// resolve follows a local "$ref": "#/$defs/<name>".
func resolve(root, node map[string]any) (map[string]any, error) {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node, nil
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	defs, _ := root["$defs"].(map[string]any)
	target, found := defs[name].(map[string]any)
	if !ok || !found {
		return nil, fmt.Errorf("unresolved $ref %q", ref)
	}
	return resolve(root, target)
}

// schemaTypes returns the JSON types node allows: its "type", or the type of its "const".
func schemaTypes(node map[string]any) []string {
	switch v := node["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		sort.Strings(out)
		return out
	}
	switch c := node["const"].(type) {
	case float64:
		if c == float64(int64(c)) {
			return []string{"integer"}
		}
		return []string{"number"}
	case string:
		return []string{"string"}
	case bool:
		return []string{"boolean"}
	}
	return nil
}

var timeType = reflect.TypeFor[time.Time]()

// jsonType is the JSON type encoding/json writes for a value of typ.
func jsonType(typ reflect.Type) string {
	switch {
	case typ == timeType:
		return "string"
	case typ.Kind() == reflect.String:
		return "string"
	case typ.Kind() == reflect.Bool:
		return "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		return "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		return "number"
	case typ.Kind() == reflect.Slice:
		return "array"
	case typ.Kind() == reflect.Struct:
		return "object"
	}
	return "unsupported " + typ.String()
}

// compareType reports every way node differs from what encoding/json makes of typ.
func compareType(root, node map[string]any, typ reflect.Type, path string) []string {
	node, err := resolve(root, node)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	nullable := typ.Kind() == reflect.Pointer
	if nullable {
		typ = typ.Elem()
	}
	want := []string{jsonType(typ)}
	if nullable {
		want = append(want, "null")
		sort.Strings(want)
	}
	if got := schemaTypes(node); !slices.Equal(got, want) {
		return []string{fmt.Sprintf("%s: schema type %v, want %v (Go %s)", path, got, want, typ)}
	}
	switch {
	case typ == timeType:
		if node["format"] != "date-time" {
			return []string{fmt.Sprintf("%s: a time.Time wants format date-time, got %v", path, node["format"])}
		}
	case typ.Kind() == reflect.Slice:
		items, ok := node["items"].(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: array without items", path)}
		}
		return compareType(root, items, typ.Elem(), path+"[]")
	case typ.Kind() == reflect.Struct:
		return compareObject(root, node, typ, path)
	}
	return nil
}

func compareObject(root, node map[string]any, typ reflect.Type, path string) []string {
	fields, problems := jsonFields(typ)
	if node["additionalProperties"] != false {
		problems = append(problems, fmt.Sprintf("%s: object without additionalProperties false", path))
	}
	props, _ := node["properties"].(map[string]any)
	var required []string
	list, _ := node["required"].([]any)
	for _, r := range list {
		required = append(required, fmt.Sprint(r))
	}
	inGo := map[string]bool{}
	for _, f := range fields {
		inGo[f.name] = true
		p := path + "." + f.name
		prop, ok := props[f.name].(map[string]any)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: Go field %q (%s) is missing from the schema's properties", path, f.name, f.typ))
			continue
		}
		if req := slices.Contains(required, f.name); req == f.optional {
			problems = append(problems, fmt.Sprintf("%s: required is %v, want %v (omitempty: %v)", p, req, !f.optional, f.optional))
		}
		problems = append(problems, compareType(root, prop, f.typ, p)...)
	}
	for name := range props {
		if !inGo[name] {
			problems = append(problems, fmt.Sprintf("%s: schema property %q is no field of %s", path, name, typ))
		}
	}
	for _, name := range required {
		if !inGo[name] {
			problems = append(problems, fmt.Sprintf("%s: required %q is no field of %s", path, name, typ))
		}
	}
	return problems
}

// compile compiles an embedded schema with format assertions on (date-time is checked).
func compile(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	data, err := messages.Schemas.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(name)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return sch
}

// validate encodes v with encoding/json and validates the bytes against sch.
func validate(t *testing.T, sch *jsonschema.Schema, v any) error {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

func sampleJob() messages.Job {
	return messages.Job{
		V:         messages.Version,
		JobID:     "4f1c2a9be0d34c55a1f0e2d3c4b5a697",
		UserID:    "665f1e0c9b1e8a0012345678",
		ProjectID: "p1",
		Language:  "python",
		Region:    "local",
		Files: []messages.File{
			{Filename: "main.py", Code: "import util\nprint(util.x)\n", IsEntryPoint: true},
			{Filename: "pkg/util.py", Code: "x = 1\n"},
		},
		Stdin:       "input\n",
		Args:        []string{"-v", "two words"},
		Limits:      messages.Limits{RunTimeMs: 2000, MemoryBytes: 64 << 20},
		SaveMetric:  true,
		PriceMicros: 10_000,
		Notify:      "exec.notify.publisher.4f1c2a9be0d34c55a1f0e2d3c4b5a697",
		SubmittedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

// TestEncodedJobsMatchTheSchema validates encoded jobs, and refuses jobs that break it.
func TestEncodedJobsMatchTheSchema(t *testing.T) {
	sch := compile(t, messages.JobSchemaFile)
	tests := []struct {
		name  string
		edit  func(*messages.Job)
		valid bool
	}{
		{"full job", func(*messages.Job) {}, true},
		{"optional fields left out", func(j *messages.Job) {
			j.ProjectID, j.Stdin, j.Args, j.Notify, j.Limits = "", "", nil, "", messages.Limits{}
			j.Files = j.Files[:1]
		}, true},
		{"wrong version", func(j *messages.Job) { j.V = 2 }, false},
		{"job id not a subject token", func(j *messages.Job) { j.JobID = "a.b" }, false},
		{"no user", func(j *messages.Job) { j.UserID = "" }, false},
		{"no files", func(j *messages.Job) { j.Files = []messages.File{} }, false},
		{"files null", func(j *messages.Job) { j.Files = nil }, false},
		{"dot-dot file name", func(j *messages.Job) { j.Files[1].Filename = "../x.py" }, false},
		{"absolute file name", func(j *messages.Job) { j.Files[1].Filename = "/etc/passwd" }, false},
		{"dot segment", func(j *messages.Job) { j.Files[1].Filename = "pkg/./util.py" }, false},
		{"negative limit", func(j *messages.Job) { j.Limits.Pids = -1 }, false},
		{"negative price", func(j *messages.Job) { j.PriceMicros = -1 }, false},
		{"notify outside the contract", func(j *messages.Job) { j.Notify = "ledger.reserve" }, false},
		{"NUL in an arg", func(j *messages.Job) { j.Args = []string{"a\x00b"} }, false},
		{"too many args", func(j *messages.Job) { j.Args = make([]string, messages.MaxArgs+1) }, false},
		{"project id too long", func(j *messages.Job) { j.ProjectID = strings.Repeat("p", 65) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			job := sampleJob()
			tc.edit(&job)
			err := validate(t, sch, job)
			if tc.valid && err != nil {
				t.Fatalf("got %v, want valid", err)
			}
			if !tc.valid && err == nil {
				t.Fatal("got valid, want a refusal")
			}
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		var m map[string]any
		data, _ := json.Marshal(sampleJob())
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		m["jobID"] = "x"
		if err := validate(t, sch, m); err == nil {
			t.Fatal("got valid, want a refusal of the unknown field jobID")
		}
	})
}

// TestEncodedResultsMatchTheSchema validates results as the runner and the edge make
// them, and refuses results that break the schema.
func TestEncodedResultsMatchTheSchema(t *testing.T) {
	sch := compile(t, messages.ResultSchemaFile)
	job := sampleJob()
	ran := func() messages.Result {
		r := messages.NewResult(&job)
		exit := 0
		r.RunnerID, r.Attempt = "runner-1", 1
		r.Status, r.Stdout, r.Stderr, r.ExitCode = messages.StatusSucceeded, "1\n", "", &exit
		r.WallTimeMs, r.CPUTimeMs, r.MemoryBytes = 42, 31, 9541632
		r.StartedAt = time.Now().UTC()
		r.FinishedAt = r.StartedAt.Add(42 * time.Millisecond)
		return r
	}
	tests := []struct {
		name  string
		edit  func(*messages.Result)
		valid bool
	}{
		{"succeeded", func(*messages.Result) {}, true},
		{"compile error", func(r *messages.Result) {
			one := 1
			r.Status, r.CompileOutput, r.ExitCode, r.Truncated = messages.StatusCompileError, "error: x", &one, true
		}, true},
		{"killed by a signal", func(r *messages.Result) {
			r.Status, r.ExitCode, r.Signal, r.ErrorMessage = messages.StatusTimeLimit, nil, "SIGKILL", "killed after 10s"
		}, true},
		{"without saved files", func(r *messages.Result) { r.SaveMetric, r.Files = false, nil }, true},
		{"abandoned before any runner took it", func(r *messages.Result) {
			*r = messages.NewResult(&job)
			r.Status, r.ErrorMessage, r.FinishedAt = messages.StatusInternalError, "the job could not be queued", time.Now().UTC()
		}, true},
		{"unknown status", func(r *messages.Result) { r.Status = "ok" }, false},
		{"no status", func(r *messages.Result) { r.Status = "" }, false},
		{"negative wall time", func(r *messages.Result) { r.WallTimeMs = -1 }, false},
		{"runner id not a token", func(r *messages.Result) { r.RunnerID = "a b" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ran()
			tc.edit(&r)
			err := validate(t, sch, r)
			if tc.valid && err != nil {
				t.Fatalf("got %v, want valid", err)
			}
			if !tc.valid && err == nil {
				t.Fatal("got valid, want a refusal")
			}
		})
	}
	t.Run("every status", func(t *testing.T) {
		for _, s := range []messages.Status{messages.StatusSucceeded, messages.StatusCompileError, messages.StatusRuntimeError,
			messages.StatusTimeLimit, messages.StatusMemoryLimit, messages.StatusOutputLimit, messages.StatusInternalError} {
			r := ran()
			r.Status = s
			if err := validate(t, sch, r); err != nil {
				t.Errorf("status %s: got %v, want valid", s, err)
			}
		}
	})
}
