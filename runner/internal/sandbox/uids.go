package sandbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"
)

// The kernel counts some things per uid: processes, inotify instances, pipe buffer pages,
// keyrings. Were two tenants' programs one uid, one could use up what the other needs. So
// every live container runs its programs as a uid of its own, taken from a range that no
// user of the host has.
//
// The uid is reserved through the container's name, "codeexec-uid-<uid>": the daemon
// refuses a second container of the same name, atomically, whatever runner of the host
// asks. So two runners of one host never hand out one uid twice, and a leftover container
// keeps its uid until it is removed (its processes may still run). Nothing else needs to
// be kept: a conflict is retried with another uid.

// UIDRange is a range of host uids for the sandboxes' programs.
type UIDRange struct {
	First int // the first uid
	Count int // how many
}

// DefaultUIDs is the range used unless a runner is given another: above the uids of
// ordinary host users and of the usual subordinate ranges of user namespaces.
var DefaultUIDs = UIDRange{First: 2_000_000, Count: 1_000_000}

// ParseUIDRange parses "first-last".
func ParseUIDRange(s string) (UIDRange, error) {
	var first, last int
	if _, err := fmt.Sscanf(s, "%d-%d", &first, &last); err != nil {
		return UIDRange{}, fmt.Errorf("uid range %q: want first-last", s)
	}
	if first < 1000 || last < first || last > 1<<31-2 {
		return UIDRange{}, fmt.Errorf("uid range %q: want 1000 <= first <= last < 2^31-1", s)
	}
	return UIDRange{First: first, Count: last - first + 1}, nil
}

// uidName is the container name that reserves uid.
func uidName(uid int) string { return "codeexec-uid-" + strconv.Itoa(uid) }

// uidAttempts bounds the tries for a free uid; with a range far larger than the number of
// live containers, a second try is already rare.
const uidAttempts = 16

// createWithUID creates the container with a uid that no other live container has: its
// work dirs are owned by it, and the launcher runs the program as it. The daemon finishes
// a create whose caller gave up, so the call is not cancelled with ctx (a container the
// caller never heard of would be left behind); it is removed by the caller instead.
func (s *Sandbox) createWithUID(ctx context.Context, cfg *container.Config, hc *container.HostConfig) (container.CreateResponse, int, error) {
	for range uidAttempts {
		uid := s.randomUID()
		hc.Tmpfs = map[string]string{
			WorkDir: fmt.Sprintf("rw,exec,size=%d,uid=%d,gid=%d,mode=0700", workDirBytes, uid, uid),
			"/tmp":  fmt.Sprintf("rw,exec,nosuid,size=%d,uid=%d,gid=%d,mode=0700", tmpDirBytes, uid, uid),
		}
		cfg.Labels[LabelUID] = strconv.Itoa(uid)
		createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
		created, err := s.docker.ContainerCreate(createCtx, cfg, hc, &network.NetworkingConfig{}, nil, uidName(uid))
		cancel()
		switch {
		case err == nil:
			return created, uid, nil
		case errdefs.IsConflict(err):
			continue // another live container has this uid
		default:
			return container.CreateResponse{}, 0, infra("create container", err)
		}
	}
	return container.CreateResponse{}, 0, infraf("create container", "no free uid in %d tries (range %d+%d)", uidAttempts, s.uids.First, s.uids.Count)
}

// randomUID picks a uid of the range; the caller reserves it.
func (s *Sandbox) randomUID() int { return s.uids.First + rand.IntN(s.uids.Count) }
