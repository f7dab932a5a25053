package messages

import "embed"

// Schemas holds the JSON Schemas (draft 2020-12) of the messages an internal publisher
// writes and reads: JobSchemaFile describes Job, ResultSchemaFile describes Result. A test
// keeps them equal to the Go types, field for field.
//
//go:embed job.schema.json result.schema.json
var Schemas embed.FS

// Names of the schema files in Schemas (and in this directory of the repository).
const (
	JobSchemaFile    = "job.schema.json"
	ResultSchemaFile = "result.schema.json"
)
