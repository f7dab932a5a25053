// Package mongoconn connects CodeExec's services to MongoDB (or the embedded FerretDB) and
// creates indexes in the one way both accept. Only the services that own data import it.
package mongoconn

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Open connects to uri and returns database db with a function that disconnects (within
// 5 s, whatever the caller's context has become).
func Open(uri, db string) (*mongo.Database, func(), error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	closeFn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(ctx)
	}
	return client.Database(db), closeFn, nil
}

// EnsureIndexes creates each index of coll with a call of its own: FerretDB v1 panics (and
// drops the connection) on a createIndexes of several indexes that all exist already, as
// they do at every restart.
func EnsureIndexes(ctx context.Context, coll *mongo.Collection, models ...mongo.IndexModel) error {
	for _, m := range models {
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index on %s: %w", coll.Name(), err)
		}
	}
	return nil
}
