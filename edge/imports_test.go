package edge_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEdgeImportsNoDatabaseOrDocker keeps the edge honest: it talks to NATS only.
func TestEdgeImportsNoDatabaseOrDocker(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list gave %d packages; want the edge's whole dependency graph", len(deps))
	}
	for _, dep := range deps {
		for _, banned := range []string{"go.mongodb.org/mongo-driver", "github.com/docker/docker", "github.com/FerretDB/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the edge depends on %s", dep)
			}
		}
	}
}
