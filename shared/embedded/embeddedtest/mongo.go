package embeddedtest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/codeexec/codeexec/shared/waitfor"
)

// IDLookupPlan is SQLite's query plan for a lookup of one document of c by _id, as the
// embedded FerretDB's explain reports it.
func IDLookupPlan(t testing.TB, c *mongo.Collection) string {
	t.Helper()
	var out struct {
		QueryPlanner struct {
			Plan []string `bson:"Plan"`
		} `bson:"queryPlanner"`
	}
	err := c.Database().RunCommand(t.Context(), bson.D{{Key: "explain", Value: bson.D{
		{Key: "find", Value: c.Name()}, {Key: "filter", Value: bson.D{{Key: "_id", Value: "some-id"}}},
	}}}).Decode(&out)
	if err != nil {
		t.Fatalf("explain find by _id on %s: %v", c.Name(), err)
	}
	return strings.Join(out.QueryPlanner.Plan, "; ")
}

// UsesIndex tells whether a plan of IDLookupPlan searches an index and scans nothing.
func UsesIndex(plan string) bool {
	return strings.Contains(plan, "SEARCH") && strings.Contains(plan, "USING INDEX") && !strings.Contains(plan, "SCAN")
}

// RequireIndexedLookup fails unless the embedded store's lookup of c by _id uses an
// index. A connection of FerretDB's pool that loaded the schema before the index existed
// plans with the old one until its next statement that runs, which EXPLAIN alone is not,
// so each attempt runs a real lookup first; the plan must come within a few attempts.
func RequireIndexedLookup(t testing.TB, c *mongo.Collection) {
	t.Helper()
	var plan string
	waitfor.Eventually(t, 10*time.Second, "an indexed lookup by _id in "+c.Name(), func() (bool, error) {
		if err := c.FindOne(t.Context(), bson.D{{Key: "_id", Value: "some-id"}}).Err(); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return false, err
		}
		plan = IDLookupPlan(t, c)
		return UsesIndex(plan), nil
	})
	t.Logf("%s: %s", c.Name(), plan)
}
