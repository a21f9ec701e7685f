package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
)

// docBlocks returns the fenced code blocks of a markdown file with the given language.
func docBlocks(t testing.TB, rel, lang string) []string {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, rel))
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// compileExampleRules compiles rules (a YAML list of rules) against the devices, zones and
// watchlists of config/examples/rules.yaml, as `fenceline check` would.
func compileExampleRules(t testing.TB, rules string) error {
	t.Helper()
	examples := repoPath(t, "config", "examples")
	data, err := os.ReadFile(filepath.Join(examples, "rules.yaml"))
	require.NoError(t, err)
	head, _, ok := strings.Cut(string(data), "\nrules:\n")
	require.True(t, ok, "config/examples/rules.yaml has no top-level rules:")
	dir := t.TempDir()
	fsys := &containerFS{root: dir}
	for _, sub := range []string{"zones", "lists"} {
		fsys.copy(t, filepath.Join(examples, sub), sub)
	}
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(head+"\nrules:\n"+rules), 0o600))
	cfg := config.Default()
	cfg.RulesFile = path
	_, err = daemon.LoadRules(&cfg)
	return err
}

// TestRulesGuideExamplesCompile compiles every rule example of docs/rules.md against the
// example deployment, and every line of its `when` examples against some source: a guide whose
// examples do not load teaches the wrong thing.
func TestRulesGuideExamplesCompile(t *testing.T) {
	n := 0
	for i, block := range docBlocks(t, "docs/rules.md", "yaml") {
		if !strings.HasPrefix(strings.TrimSpace(block), "- id:") {
			continue
		}
		n++
		id := regexp.MustCompile(`- id: (\S+)`).FindStringSubmatch(block)[1]
		t.Run(fmt.Sprintf("%d %s", i, id), func(t *testing.T) {
			require.NoError(t, compileExampleRules(t, block))
		})
	}
	require.GreaterOrEqual(t, n, 8, "rule examples found in docs/rules.md")

	whens := docBlocks(t, "docs/rules.md", "text")
	require.NotEmpty(t, whens)
	for _, line := range strings.Split(strings.TrimSpace(whens[0]), "\n") {
		expr, _, _ := strings.Cut(line, " #")
		expr = strings.TrimSpace(expr)
		t.Run("when "+expr, func(t *testing.T) {
			var errs []string
			for _, rule := range []string{
				"{id: x, kind: presence, source: phone, when: %q}",
				"{id: x, kind: presence, source: vehicle, when: %q}",
				"{id: x, kind: presence, source: patrol, when: %q}",
				"{id: x, kind: status, when: %q}",
			} {
				err := compileExampleRules(t, "  - "+fmt.Sprintf(rule, expr)+"\n")
				if err == nil {
					return
				}
				errs = append(errs, err.Error())
			}
			t.Fatalf("compiles for no source:\n%s", strings.Join(errs, "\n"))
		})
	}
}
