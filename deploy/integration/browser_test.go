package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one browser step; a run waits for a container, a cpp run for g++ too.
const stepTimeout = 90 * time.Second

// startBrowser starts Debian's chromium, headless, for the rest of the test. A machine
// without it fails the test: the browser tests are part of `make test`.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser tests need Debian's chromium on PATH (as root: apt-get install -y chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout on it
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// tab is one page in a browser context of its own (its own cookies): one person at the
// playground. Its steps take screenshots; its console is watched for exceptions and
// Content-Security-Policy refusals.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string
}

var shotSeq struct {
	sync.Mutex
	n int
}

func newTab(t *testing.T, browser context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab for %s: %v", name, err)
	}
	tb := &tab{t: t, name: name, ctx: ctx}
	messages := chromedp.Console(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				tb.mu.Lock()
				tb.problems = append(tb.problems, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-watching
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("%s's page console: %s", name, p)
		}
	})
	return tb
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// step runs one step of the scenario and takes a screenshot of the page after it: kept in
// the test's artifact dir (a temporary dir unless `go test -artifacts`) and, when
// CODEEXEC_SCREENSHOTS names a dir, there too. A failing step stops the test and names
// its screenshot.
func (tb *tab) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.finish(name, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// navigatingStep is a step whose actions lead the page to another one: it ends once
// that page has loaded.
func (tb *tab) navigatingStep(name string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.finish(name, func(ctx context.Context) error {
		_, err := chromedp.RunResponse(ctx, actions...)
		return err
	})
}

func (tb *tab) finish(name string, do func(ctx context.Context) error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	err := do(ctx)
	cancel()
	shot := tb.screenshot(name, err != nil)
	if err != nil {
		tb.t.Fatalf("%s: step %q: %v\n  page: %s\n  screenshot: %s", tb.name, name, err, tb.summary(), shot)
	}
}

func (tb *tab) screenshot(step string, failed bool) string {
	tb.t.Helper()
	shotSeq.Lock()
	shotSeq.n++
	n := shotSeq.n
	shotSeq.Unlock()
	file := fmt.Sprintf("%02d-%s-%s", n, tb.name, unsafeName.ReplaceAllString(strings.ToLower(step), "-"))
	if failed {
		file += "-FAILED"
	}
	file += ".png"
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("%s: screenshot of step %q: %v", tb.name, step, err)
		return "(none)"
	}
	dirs := []string{tb.t.ArtifactDir()}
	if dir := os.Getenv("CODEEXEC_SCREENSHOTS"); dir != "" {
		dirs = append(dirs, dir)
	}
	var kept string
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.t.Errorf("screenshot dir: %v", err)
			continue
		}
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			tb.t.Errorf("save screenshot: %v", err)
			continue
		}
		kept = path
	}
	return kept
}

// summary is what the page shows in its status, notice and panes, for failure messages.
func (tb *tab) summary() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`['status', 'notice', 'stdout', 'stderr', 'wallet']
		.map(id => id + '=' + JSON.stringify((document.querySelector('[data-testid="' + id + '"]') || {}).textContent))
		.join(' ') + ' url=' + location.href`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// value reads a JavaScript expression in the tab.
func value[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

// testID selects the element with a data-testid.
func testID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id))
}

// until waits for a JavaScript condition to hold in the page.
func until(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(stepTimeout))
}

// script runs JavaScript in the page for its effect.
func script(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](js)
}

// textOf is a JavaScript expression for the text of a data-testid element.
func textOf(id string) string {
	return fmt.Sprintf(`document.querySelector('[data-testid=%q]').textContent`, id)
}
