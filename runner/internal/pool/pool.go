// Package pool keeps warm containers: per language, a few created and started containers
// that have never served a job, so that a job does not wait for a container to start. A
// taken container belongs to its job and is removed after it; it never comes back.
package pool

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/codeexec/codeexec/runner/internal/sandbox"
	"github.com/codeexec/codeexec/shared/languages"
	"github.com/codeexec/codeexec/shared/messages"
)

// Factory creates and removes containers; *sandbox.Sandbox is one.
type Factory interface {
	Create(ctx context.Context, lang *languages.Language, lim messages.Limits, jobID string) (*sandbox.Container, error)
	Remove(ctx context.Context, c *sandbox.Container)
}

// Language is one language the pool keeps containers for, with the limits they are made with.
type Language struct {
	Lang   *languages.Language
	Limits messages.Limits
}

// Pool is the warm pool of every served language.
type Pool struct {
	factory Factory
	size    int
	log     *slog.Logger
	// OnChange, when set, is told the warm count of a language whenever it changes.
	onChange func(lang string, warm int)

	mu     sync.Mutex
	langs  map[string]*langPool
	closed bool
}

type langPool struct {
	Language
	warm []*sandbox.Container
	kick chan struct{}
}

// New returns a pool keeping size warm containers of each language. Run fills it.
func New(factory Factory, size int, langs []Language, log *slog.Logger, onChange func(lang string, warm int)) *Pool {
	p := &Pool{factory: factory, size: size, log: log, onChange: onChange, langs: map[string]*langPool{}}
	for _, l := range langs {
		p.langs[l.Lang.Name] = &langPool{Language: l, kick: make(chan struct{}, 1)}
	}
	return p
}

// Run keeps the pool filled until ctx ends, then removes every warm container.
func (p *Pool) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, lp := range p.langs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fill(ctx, lp)
		}()
		lp.kick <- struct{}{}
	}
	wg.Wait()

	p.mu.Lock()
	p.closed = true
	var rest []*sandbox.Container
	for _, lp := range p.langs {
		rest = append(rest, lp.warm...)
		lp.warm = nil
		p.changed(lp)
	}
	p.mu.Unlock()
	cleanup := context.WithoutCancel(ctx)
	var rm sync.WaitGroup
	for _, c := range rest {
		rm.Add(1)
		go func() {
			defer rm.Done()
			p.factory.Remove(cleanup, c)
		}()
	}
	rm.Wait()
}

// fill creates containers one at a time until the language has size warm ones; so at most
// one creation is in flight per language and the pool never holds more than size.
func (p *Pool) fill(ctx context.Context, lp *langPool) {
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-lp.kick:
		}
		for ctx.Err() == nil {
			p.mu.Lock()
			full := len(lp.warm) >= p.size
			p.mu.Unlock()
			if full {
				break
			}
			c, err := p.factory.Create(ctx, lp.Lang, lp.Limits, "")
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Warn("warm container", "language", lp.Lang.Name, "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = time.Second
			p.mu.Lock()
			if p.closed || ctx.Err() != nil {
				p.mu.Unlock()
				p.factory.Remove(context.WithoutCancel(ctx), c)
				return
			}
			lp.warm = append(lp.warm, c)
			p.changed(lp)
			p.mu.Unlock()
		}
	}
}

// Take returns a warm container of lang, or creates one on the spot when none is warm.
// The container is the caller's: it must be removed after its job.
func (p *Pool) Take(ctx context.Context, lang string, jobID string) (c *sandbox.Container, warm bool, err error) {
	p.mu.Lock()
	lp, ok := p.langs[lang]
	if ok && len(lp.warm) > 0 {
		// Oldest first: a container made long ago is no better kept than used.
		c = lp.warm[0]
		lp.warm = lp.warm[1:]
		p.changed(lp)
	}
	p.mu.Unlock()
	if ok {
		select {
		case lp.kick <- struct{}{}:
		default:
		}
	}
	if c != nil {
		return c, true, nil
	}
	if !ok {
		return nil, false, &sandbox.InfraError{Op: "take container", Err: errUnknown(lang)}
	}
	c, err = p.factory.Create(ctx, lp.Lang, lp.Limits, jobID)
	return c, false, err
}

// Warm returns how many warm containers lang has.
func (p *Pool) Warm(lang string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lp, ok := p.langs[lang]; ok {
		return len(lp.warm)
	}
	return 0
}

func (p *Pool) changed(lp *langPool) {
	if p.onChange != nil {
		p.onChange(lp.Lang.Name, len(lp.warm))
	}
}

type errUnknown string

func (e errUnknown) Error() string { return "the pool does not serve language " + string(e) }
