package wallet

import (
	"context"
	"sync"
)

// keyLock serializes work per key inside one process. It only cuts conflicts: correctness
// across processes comes from the chain's unique _id.
type keyLock struct {
	mu sync.Mutex
	m  map[string]*keySlot
}

type keySlot struct {
	ch   chan struct{}
	refs int
}

func newKeyLock() *keyLock { return &keyLock{m: make(map[string]*keySlot)} }

// lock waits for key or for ctx to end. The returned func unlocks.
func (k *keyLock) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	s := k.m[key]
	if s == nil {
		s = &keySlot{ch: make(chan struct{}, 1)}
		k.m[key] = s
	}
	s.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		s.refs--
		if s.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
