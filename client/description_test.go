package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/codeexec/codeexec/client"
)

// descriptionFile is the API description the edge serves, in this repository.
const descriptionFile = "../edge/internal/apidoc/openapi.json"

func loadDescription(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile(descriptionFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load %s: %v", descriptionFile, err)
	}
	return doc
}

// TestEveryOperationHasAMethod: the client has a method named after each operationId.
func TestEveryOperationHasAMethod(t *testing.T) {
	doc := loadDescription(t)
	methods := reflect.TypeFor[*client.Client]()
	ops := 0
	for path, item := range doc.Paths.Map() {
		for verb, op := range item.Operations() {
			ops++
			id := []rune(op.OperationID)
			id[0] = unicode.ToUpper(id[0])
			m, ok := methods.MethodByName(string(id))
			if !ok {
				t.Errorf("%s %s (operationId %s): the client has no method %s", verb, path, op.OperationID, string(id))
				continue
			}
			if m.Type.NumIn() < 2 || m.Type.In(1) != reflect.TypeFor[context.Context]() {
				t.Errorf("client.%s does not take a context first", m.Name)
			}
		}
	}
	if ops < 27 {
		t.Fatalf("the description has %d operations, want every route of the edge", ops)
	}
}

// schemaTypes maps the description's schemas to the client's types.
func schemaTypes() map[string]func() any {
	return map[string]func() any{
		"RegisterRequest": func() any { return new(client.RegisterRequest) }, "RegisterReply": func() any { return new(client.RegisterReply) },
		"LoginRequest": func() any { return new(client.LoginRequest) }, "LoginReply": func() any { return new(client.LoginReply) },
		"Me": func() any { return new(client.Me) }, "KeyCreateRequest": func() any { return new(client.KeyCreateRequest) },
		"KeyCreated": func() any { return new(client.KeyCreated) }, "KeyList": func() any { return new(client.KeyList) },
		"ExecuteV1Request": func() any { return new(client.ExecuteV1Request) }, "ExecuteV2Request": func() any { return new(client.ExecuteV2Request) },
		"ProjectExecuteRequest": func() any { return new(client.ProjectExecuteRequest) },
		"ExecuteResult":         func() any { return new(client.Execution) }, "ExecuteAccepted": func() any { return new(client.Execution) },
		"Job": func() any { return new(client.Job) }, "Wallet": func() any { return new(client.Wallet) },
		"Usage": func() any { return new(client.Usage) }, "CreditRequest": func() any { return new(client.CreditRequest) },
		"CreditReply": func() any { return new(client.CreditReply) }, "ProjectInput": func() any { return new(client.ProjectInput) },
		"Project": func() any { return new(client.Project) }, "ProjectList": func() any { return new(client.ProjectList) },
		"Share": func() any { return new(client.Share) }, "Shared": func() any { return new(client.Shared) },
		"Health": func() any { return new(client.Health) }, "Ready": func() any { return new(client.Health) },
	}
}

// TestExamplesRoundTrip: every example of the description decodes into the client's type
// with no field left over, and the client's encoding of it is valid under the schema.
func TestExamplesRoundTrip(t *testing.T) {
	doc := loadDescription(t)
	types := schemaTypes()
	checked := 0
	check := func(where string, mt *openapi3.MediaType) {
		if mt == nil || mt.Schema == nil || mt.Example == nil {
			return
		}
		name := strings.TrimPrefix(mt.Schema.Ref, "#/components/schemas/")
		newValue, ok := types[name]
		if !ok {
			return
		}
		example, err := json.Marshal(mt.Example)
		if err != nil {
			t.Fatal(err)
		}
		v := newValue()
		dec := json.NewDecoder(bytes.NewReader(example))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: the example does not decode into %T: %v", where, v, err)
			return
		}
		encoded, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var generic any
		if err := json.Unmarshal(encoded, &generic); err != nil {
			t.Fatal(err)
		}
		if err := mt.Schema.Value.VisitJSON(generic, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s: %T encodes as %s, which schema %s refuses: %v", where, v, encoded, name, err)
		}
		checked++
	}
	for path, item := range doc.Paths.Map() {
		for verb, op := range item.Operations() {
			if op.RequestBody != nil {
				check(verb+" "+path+" request", op.RequestBody.Value.Content.Get("application/json"))
			}
			for status, r := range op.Responses.Map() {
				if r.Value != nil {
					check(verb+" "+path+" "+status, r.Value.Content.Get("application/json"))
				}
			}
		}
	}
	for name := range types {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("schema %s is not in the description any more", name)
		}
	}
	if checked < 15 {
		t.Fatalf("checked %d examples, want the description's examples of every client type", checked)
	}
}
