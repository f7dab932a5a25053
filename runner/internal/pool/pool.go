// Package pool keeps warm containers: per language, a few created and started containers
// that have never served a job, so that a job does not wait for a container to start. A
// taken container belongs to its job and is removed after it; it never comes back.
//
// Each language's pool follows its demand (demand.go): as many warm containers as jobs took
// in the last DemandWindow, between the operator's minimum and maximum, so that a language
// nobody uses holds nothing warm and a busy one is never held back by an idle one. Refills
// run only as far as the host's idle CPU allows, so that they do not slow running jobs.
package pool

import (
	"context"
	"log/slog"
	"slices"
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
	// CanUpdateLimits reports whether a job may change a container's limits before it
	// runs; where it may not (gVisor), a job with other limits gets a container of its own.
	CanUpdateLimits() bool
}

// Language is one language the pool keeps containers for, with the limits they are made with.
type Language struct {
	Lang   *languages.Language
	Limits messages.Limits
}

// Options tune a Pool.
type Options struct {
	// Max is the most warm containers a language keeps (CODEEXEC_POOL_SIZE); Min the fewest,
	// even when nobody uses it (CODEEXEC_POOL_MIN).
	Max, Min int
	// Window is how far back takes count toward a language's demand; default DemandWindow.
	Window time.Duration
	Log    *slog.Logger
	// OnChange, when set, is told the warm count and target of a language when they change.
	OnChange func(lang string, warm, target int)
	// Now and Idle replace the clock and the host's idle CPU share (/proc/stat), for tests.
	Now  func() time.Time
	Idle func() float64
}

// Pool is the warm pool of every served language.
type Pool struct {
	factory Factory
	opts    Options
	log     *slog.Logger

	// watchers counts the goroutines watching warm containers; Run waits for them.
	watchers sync.WaitGroup
	// stopped is closed once Run has removed the warm containers: a watcher of a container
	// that was taken (its job's, ended whenever the job ends) stops watching then.
	stopped chan struct{}

	mu     sync.Mutex
	langs  map[string]*langPool
	closed bool
}

type langPool struct {
	Language
	warm []*sandbox.Container
	// creating counts the creations in flight.
	creating int
	demand   *demand
	kick     chan struct{}
}

// New returns a pool of langs. Run fills it.
func New(factory Factory, o Options, langs []Language) *Pool {
	if o.Window <= 0 {
		o.Window = DemandWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Idle == nil {
		o.Idle = hostIdle
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Min = min(max(o.Min, 0), o.Max)
	p := &Pool{factory: factory, opts: o, log: o.Log, langs: map[string]*langPool{}, stopped: make(chan struct{})}
	for _, l := range langs {
		p.langs[l.Lang.Name] = &langPool{Language: l, kick: make(chan struct{}, 1), demand: newDemand(o.Window, o.Min, o.Max, o.Now)}
	}
	return p
}

// recheck is how often a pool looks again at its target and the host's idle CPU.
const recheck = time.Second

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
	close(p.stopped)
	p.watchers.Wait()
}

// Creators is how many containers a language's refill creates at once. A create and start
// mostly waits on the daemon: two at once make warm containers about twice as fast
// (11 → 22 per second on a 2-core host; 4 at once 27), so that a burst of jobs drains the
// pool less.
const Creators = 2

// fill keeps lp at its target: on every kick, and every recheck, it removes warm
// containers over the target (the oldest first) and starts creations for what is missing,
// as many at a time as the host's idle CPU allows (at most Creators), so the pool never
// holds more than its target.
func (p *Pool) fill(ctx context.Context, lp *langPool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	r := &refill{backoff: time.Second}
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lp.kick:
		case <-tick.C:
		}
		p.shrink(ctx, lp)
		idle := p.opts.Idle()
		for {
			p.mu.Lock()
			target := lp.demand.target()
			start := ctx.Err() == nil && !p.closed && len(lp.warm)+lp.creating < target &&
				lp.creating < creators(idle, len(lp.warm) == 0)
			if start {
				lp.creating++
			}
			p.changed(lp)
			p.mu.Unlock()
			if !start {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.create(ctx, lp, r)
			}()
		}
	}
}

// shrink removes the warm containers of lp over its target, the oldest first.
func (p *Pool) shrink(ctx context.Context, lp *langPool) {
	p.mu.Lock()
	extra := len(lp.warm) - lp.demand.target()
	var gone []*sandbox.Container
	if extra > 0 {
		gone = slices.Clone(lp.warm[:extra])
		lp.warm = slices.Delete(lp.warm, 0, extra)
		p.changed(lp)
	}
	p.mu.Unlock()
	for _, c := range gone {
		p.factory.Remove(context.WithoutCancel(ctx), c)
	}
}

// refill is the retry state a language's creators share.
type refill struct {
	mu      sync.Mutex
	backoff time.Duration
}

// create makes one warm container of lp, or waits out the backoff after a failure, then
// kicks the refill again.
func (p *Pool) create(ctx context.Context, lp *langPool, r *refill) {
	c, err := p.factory.Create(ctx, lp.Lang, lp.Limits, "")
	if err != nil && ctx.Err() == nil {
		r.mu.Lock()
		wait := r.backoff
		r.backoff = min(2*r.backoff, 30*time.Second)
		r.mu.Unlock()
		p.log.Warn("warm container", "language", lp.Lang.Name, "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	} else if err == nil {
		r.mu.Lock()
		r.backoff = time.Second
		r.mu.Unlock()
	}
	p.mu.Lock()
	lp.creating--
	if c != nil && (p.closed || ctx.Err() != nil) {
		p.mu.Unlock()
		p.factory.Remove(context.WithoutCancel(ctx), c)
		return
	}
	if c != nil {
		lp.warm = append(lp.warm, c)
		p.changed(lp)
		p.watchers.Add(1)
		go p.watch(lp, c)
	}
	p.mu.Unlock()
	lp.kickRefill()
}

// watch drops c from the warm containers should it die there (killed from outside, or its
// daemon restarted), so that no job is given a dead container, and has it replaced.
func (p *Pool) watch(lp *langPool, c *sandbox.Container) {
	defer p.watchers.Done()
	select {
	case <-c.Ended():
	case <-p.stopped:
		return // the pool's own were removed (and their end seen) before stopped
	}
	p.mu.Lock()
	i := slices.Index(lp.warm, c)
	if i >= 0 {
		lp.warm = slices.Delete(lp.warm, i, i+1)
		p.changed(lp)
	}
	p.mu.Unlock()
	if i < 0 {
		return // taken, or removed at shutdown
	}
	p.log.Warn("warm container died; replacing it", "language", lp.Lang.Name, "container_id", c.ID[:12])
	p.factory.Remove(context.Background(), c)
	lp.kickRefill()
}

// Take returns a warm container of lang for a job with the limits lim, or creates one on
// the spot when none is warm. Where the factory cannot update a container's limits, a job
// whose lim differs from the warm containers' (memory, CPU, pids) gets a container created
// with lim, and does not count toward lang's demand (it uses no warm one). The container
// is the caller's: it must be removed after its job, and Refill called. The refill starts
// at once only when no warm container of lang is left.
func (p *Pool) Take(ctx context.Context, lang string, jobID string, lim messages.Limits) (c *sandbox.Container, warm bool, err error) {
	p.mu.Lock()
	lp, ok := p.langs[lang]
	refillNow := false
	own := ok && !p.factory.CanUpdateLimits() && !sandbox.SameResources(lim, lp.Limits)
	if own {
		p.mu.Unlock()
		c, err = p.factory.Create(ctx, lp.Lang, lim, jobID)
		return c, false, err
	}
	if ok {
		// Oldest first: a container made long ago is no better kept than used. One that
		// died a moment ago is skipped and left to its watcher.
		lp.demand.take()
		if i := slices.IndexFunc(lp.warm, (*sandbox.Container).Alive); i >= 0 {
			c = lp.warm[i]
			lp.warm = slices.Delete(lp.warm, i, i+1)
			p.changed(lp)
		}
		refillNow = len(lp.warm) == 0
	}
	p.mu.Unlock()
	if refillNow {
		lp.kickRefill()
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

// Refill tells the pool that a job taken from lang is over: its container is replaced now.
// Until then, while lang has a warm container left, the replacement waits, so that creating
// it (tens of milliseconds of the daemon's CPU) does not slow the job it was taken for.
func (p *Pool) Refill(lang string) {
	p.mu.Lock()
	lp, ok := p.langs[lang]
	p.mu.Unlock()
	if ok {
		lp.kickRefill()
	}
}

func (lp *langPool) kickRefill() {
	select {
	case lp.kick <- struct{}{}:
	default:
	}
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

// Target returns how many warm containers lang should have now.
func (p *Pool) Target(lang string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lp, ok := p.langs[lang]; ok {
		return lp.demand.target()
	}
	return 0
}

func (p *Pool) changed(lp *langPool) {
	if p.opts.OnChange != nil {
		p.opts.OnChange(lp.Lang.Name, len(lp.warm), lp.demand.target())
	}
}

type errUnknown string

func (e errUnknown) Error() string { return "the pool does not serve language " + string(e) }
