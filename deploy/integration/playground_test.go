package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/codeexec/codeexec/shared/config"
)

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pick chooses a language in the picker as a user does, change event and all.
func pick(language string) chromedp.Action[chromedp.Void] {
	return script(fmt.Sprintf(`(() => { const s = document.querySelector('[data-testid="language"]');
		s.value = %s; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, jsString(language)))
}

func setCode(code string) chromedp.Action[chromedp.Void] {
	return script(fmt.Sprintf(`window.codeexec.setCode(%s)`, jsString(code)))
}

// projectListed is a JavaScript condition: the project list shows a project of this name.
func projectListed(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid="projects"] li .open')].some(b => b.textContent === %s)`, jsString(name))
}

// projectButton selects a button (open, rename, delete) of the listed project of this name.
func projectButton(name, button string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`[...document.querySelectorAll('[data-testid="projects"] li')]
		.find(li => li.querySelector('.open').textContent === %s).querySelector(%s)`, jsString(name), jsString("."+button)))
}

// TestPlaygroundInABrowser drives the web playground in a headless chromium against a
// real all-in-one: register, run python from the keyboard, a cpp compile error, a
// language no runner serves, two files with stdin and args, save, rename, delete and
// open projects, share one, the shared read-only view with no login, and a fork by
// another user.
func TestPlaygroundInABrowser(t *testing.T) {
	browser := startBrowser(t)
	inst := startMesh(t, t.TempDir(), func(c *config.Config) {
		c.Languages = []string{"python", "cpp"}
		c.FreeCreditMicros = 1_000_000 // $1.00, shown as such
	})
	base := inst.URL
	name := fmt.Sprintf("pg%d", time.Now().UnixNano()%1e9)

	alice := newTab(t, browser, "author")
	alice.step("open the playground",
		chromedp.Navigate(base+"/"),
		until(`document.body.dataset.ready === 'true'`),
		until(`[...document.querySelectorAll('[data-testid="language"] option')]
			.some(o => o.value === 'python' && o.dataset.available === 'true')`),
		until(`!document.querySelector('[data-testid="email"]').closest('form').hidden`),
	)
	alice.step("register",
		chromedp.SendKeys(testID("email"), name+"@example.com"),
		chromedp.SendKeys(testID("username"), name),
		chromedp.SendKeys(testID("password"), "a long password"),
		chromedp.Click(testID("register")),
		until(textOf("wallet")+` === '$1.00'`),
		until(textOf("notice")+`.includes('API key')`),
	)
	alice.step("run python with ctrl+enter",
		pick("python"),
		setCode("print(\"Hello, world!\")\n"),
		chromedp.Click(chromedp.CSS(`[data-testid="editor"] .cm-content`)),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		until(textOf("status")+`.startsWith('succeeded')`),
		until(textOf("wallet")+` === '$0.99'`),
	)
	if got := value[string](alice, textOf("stdout")); got != "Hello, world!\n" {
		t.Errorf("stdout pane: got %q, want %q", got, "Hello, world!\n")
	}
	if got := value[string](alice, `window.codeexec.getCode()`); got != "print(\"Hello, world!\")\n" {
		t.Errorf("getCode after the run: got %q (Ctrl+Enter must run, not edit)", got)
	}
	if got := value[string](alice, textOf("usage")); !strings.Contains(got, "ms wall") || !strings.Contains(got, "MB memory") {
		t.Errorf("usage: got %q, want the time and memory used", got)
	}

	alice.step("cpp compile error",
		pick("cpp"),
		setCode("int main() { return undefined_name; }\n"),
		chromedp.Click(testID("run")),
		until(textOf("status")+`.startsWith('compile_error')`),
	)
	if got := value[string](alice, textOf("stderr")); !strings.Contains(got, "undefined_name") || !strings.Contains(got, "error") {
		t.Errorf("stderr pane after a compile error: got %q, want g++'s error about undefined_name", got)
	}

	alice.step("a language with no runner",
		until(`document.querySelector('[data-testid="language"] option[value="java"]').dataset.available === 'false'`),
		pick("java"),
		chromedp.Click(testID("run")),
		until(textOf("status")+` === 'refused: 503 no_runner'`),
		until(textOf("notice")+`.startsWith('No runner can serve this language right now')`),
	)

	alice.step("two files with stdin and args",
		pick("python"),
		setCode("import greet, sys\nprint(greet.hello(input()), sys.argv[1:])\n"),
		chromedp.SendKeys(testID("new-file"), "greet.py"),
		chromedp.Click(testID("add-file")),
		until(`document.querySelector('.tab.active').dataset.filename === 'greet.py'`),
		setCode("def hello(n):\n    return 'hello ' + n\n"),
		chromedp.Click(chromedp.CSS(`.tab[data-filename="main.py"]`)),
		chromedp.SendKeys(testID("stdin"), "browser"),
		chromedp.SendKeys(testID("args"), "-v"),
		chromedp.Click(testID("run")),
		until(textOf("status")+`.startsWith('succeeded')`),
	)
	if got, want := value[string](alice, textOf("stdout")), "hello browser ['-v']\n"; got != want {
		t.Errorf("stdout of the two-file run: got %q, want %q", got, want)
	}

	alice.step("save a project",
		chromedp.SendKeys(testID("project-name"), "greeting"),
		chromedp.Click(testID("save")),
		until(projectListed("greeting")),
	)
	alice.step("save as new, rename, delete, open",
		chromedp.SetValue(testID("project-name"), "scratch"),
		chromedp.Click(testID("save-new")),
		until(projectListed("scratch")),
		chromedp.Click(projectButton("scratch", "rename")),
		chromedp.SetValue(testID("rename-name"), "scratch-renamed"),
		chromedp.Click(testID("project-rename-ok")),
		until(projectListed("scratch-renamed")),
		until(`document.querySelector('[data-testid="project-name"]').value === 'scratch-renamed'`),
		chromedp.Click(projectButton("scratch-renamed", "delete")),
		chromedp.Click(projectButton("scratch-renamed", "delete")), // the second click confirms
		until(`!(`+projectListed("scratch-renamed")+`)`),
		until(`document.querySelector('[data-testid="project-name"]').value === ''`),
		chromedp.Click(projectButton("greeting", "open")),
		until(`document.querySelector('[data-testid="project-name"]').value === 'greeting'`),
		until(`[...document.querySelectorAll('.tab')].map(b => b.dataset.filename).join(',') === 'main.py,greet.py'`),
	)
	alice.step("share it",
		chromedp.Click(testID("share")),
		until(`document.querySelector('[data-testid="share-link"]').href.includes('/s/')`),
	)
	link := value[string](alice, `document.querySelector('[data-testid="share-link"]').href`)
	if !strings.HasPrefix(link, base+"/s/") {
		t.Fatalf("share link: got %q, want %s/s/…", link, base)
	}

	visitor := newTab(t, browser, "visitor")
	visitor.step("shared view with no login",
		chromedp.Navigate(link),
		until(`document.body.dataset.ready === 'true'`),
		until(`!document.getElementById('shared-banner').hidden`),
	)
	if got := value[string](visitor, `document.getElementById('shared-name').textContent + ' by ' + document.getElementById('shared-owner').textContent`); got != "greeting by "+name {
		t.Errorf("shared banner: got %q, want %q", got, "greeting by "+name)
	}
	if got := value[string](visitor, `[...document.querySelectorAll('.tab')].map(b => b.dataset.filename).join(',')`); got != "main.py,greet.py" {
		t.Errorf("shared view's files: got %q, want main.py,greet.py", got)
	}
	if got := value[string](visitor, `window.codeexec.getCode()`); !strings.Contains(got, "greet.hello") {
		t.Errorf("shared view's code: got %q", got)
	}
	if got := value[string](visitor, `document.querySelector('[data-testid="editor"] .cm-content').contentEditable`); got != "false" {
		t.Errorf("shared view's editor: contentEditable %q, want false (read-only)", got)
	}
	if value[bool](visitor, `document.querySelector('[data-testid="save"]').offsetParent !== null`) {
		t.Error("the shared view offers to save: it must be read-only")
	}
	visitor.step("fork needs a login",
		chromedp.Click(testID("fork")),
		until(textOf("notice")+`.includes('Log in')`),
	)

	bob := registerUser(t, base)
	visitor.step("log in as another user",
		chromedp.SendKeys(testID("email"), bob.Email),
		chromedp.SendKeys(testID("password"), "a long password"),
		chromedp.Click(testID("login")),
		until(`!document.getElementById('account').hidden`),
		until(textOf("wallet")+`.startsWith('$')`),
	)
	visitor.navigatingStep("fork", chromedp.Click(testID("fork")))
	visitor.step("the fork in own projects",
		until(`location.pathname === '/' && document.body.dataset.ready === 'true'`),
		until(projectListed("greeting")),
		until(`document.querySelector('[data-testid="project-name"]').value === 'greeting'`),
	)

	var list struct {
		Projects []struct {
			ID, Name string
		} `json:"projects"`
	}
	if status, body := call(t, base, http.MethodGet, "/api/projects", bob.APIKey, nil, &list); status != http.StatusOK {
		t.Fatalf("bob's projects: got %d %s", status, body)
	}
	if len(list.Projects) != 1 || list.Projects[0].Name != "greeting" {
		t.Errorf("bob's projects after the fork: got %+v, want one named greeting", list.Projects)
	}
}
