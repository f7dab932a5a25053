// Package indexes creates MongoDB indexes in a way both MongoDB and FerretDB accept.
package indexes

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Ensure creates each index of coll, one call per index: FerretDB v1 panics on a
// createIndexes of several indexes that all exist already, as they do at every restart.
func Ensure(ctx context.Context, coll *mongo.Collection, models ...mongo.IndexModel) error {
	for _, m := range models {
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index on %s: %w", coll.Name(), err)
		}
	}
	return nil
}
