// Package deploy holds the tests of the deployment files under deploy/: that they parse, that
// they agree with each other and with the daemon, and — against real services — that the
// dashboards' queries return data, that the InfluxDB setup works and that the broker
// configuration keeps a QoS 1 backlog and confines devices to their own topics.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/daemon"
)

// deployFiles lists the files under deploy/ with one of the extensions, relative to deploy/.
func deployFiles(t testing.TB, exts ...string) []string {
	t.Helper()
	root := repoPath(t, "deploy")
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}

// yamlDocs decodes every document of a YAML file strictly: a syntax error, a repeated key or
// a tab in indentation is an error. Each document is returned as a generic value.
func yamlDocs(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if err := checkDuplicateKeys(&n); err != nil {
			return nil, err
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		docs = append(docs, v)
	}
}

// checkDuplicateKeys reports a mapping that has a key twice: YAML forbids it, and most tools
// silently keep the last one, so a repeated key hides an edit.
func checkDuplicateKeys(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if first, ok := seen[k.Value]; ok {
				return fmt.Errorf("line %d: key %q repeated (first at line %d)", k.Line, k.Value, first)
			}
			seen[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkDuplicateKeys(c); err != nil {
			return err
		}
	}
	return nil
}

// checkJSON decodes one JSON value strictly: nothing after it, and no object with a key twice
// (encoding/json would silently keep the last).
func checkJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("offset %d: key %q repeated", dec.InputOffset(), key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("data after the JSON value (offset %d)", dec.InputOffset())
	}
	return nil
}

func TestStrictParsers(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, json string
		wantErr          bool
	}{
		{name: "yaml ok", yaml: "a: 1\nb: {c: 2}\n---\nd: [1, 2]\n"},
		{name: "yaml repeated key", yaml: "a: 1\nb: 2\na: 3\n", wantErr: true},
		{name: "yaml repeated nested key", yaml: "a:\n  b: 1\n  b: 2\n", wantErr: true},
		{name: "yaml syntax", yaml: "a: [1, 2\n", wantErr: true},
		{name: "json ok", json: `{"a": [1, {"b": null}], "c": "d"}`},
		{name: "json repeated key", json: `{"a": 1, "b": {"c": 1, "c": 2}}`, wantErr: true},
		{name: "json trailing data", json: `{"a": 1} {"b": 2}`, wantErr: true},
		{name: "json truncated", json: `{"a": [1, 2}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.yaml != "" {
				_, err = yamlDocs([]byte(tc.yaml))
			} else {
				err = checkJSON([]byte(tc.json))
			}
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// TestDeployFilesParse parses every YAML and JSON file under deploy/ strictly, and checks that
// every Kubernetes object has apiVersion, kind and metadata.name.
func TestDeployFilesParse(t *testing.T) {
	for _, rel := range deployFiles(t, ".yaml", ".yml", ".json") {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(repoPath(t, "deploy", rel))
			require.NoError(t, err)
			if filepath.Ext(rel) == ".json" {
				require.NoError(t, checkJSON(data))
				return
			}
			docs, err := yamlDocs(data)
			require.NoError(t, err)
			require.NotEmpty(t, docs)
			if !strings.HasPrefix(rel, "kubernetes"+string(filepath.Separator)) {
				return
			}
			for i, doc := range docs {
				obj := asMap(doc)
				require.NotEmpty(t, str(obj["apiVersion"]), "document %d: apiVersion", i)
				require.NotEmpty(t, str(obj["kind"]), "document %d: kind", i)
				if obj["kind"] == "Kustomization" {
					continue // a build file, not an object sent to the API server
				}
				require.NotEmpty(t, str(asMap(obj["metadata"])["name"]), "document %d (%s): metadata.name", i, obj["kind"])
			}
		})
	}
}

// kubeObjects returns the objects of deploy/kubernetes by kind and name.
func kubeObjects(t testing.TB) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, rel := range deployFiles(t, ".yaml") {
		dir, file := filepath.Split(rel)
		if dir != "kubernetes"+string(filepath.Separator) {
			continue
		}
		data, err := os.ReadFile(repoPath(t, "deploy", rel))
		require.NoError(t, err)
		docs, err := yamlDocs(data)
		require.NoError(t, err)
		for _, d := range docs {
			obj := asMap(d)
			name := str(asMap(obj["metadata"])["name"])
			if obj["kind"] == "Kustomization" {
				name = file
			}
			out[str(obj["kind"])+"/"+name] = obj
		}
	}
	return out
}

// dig walks nested maps and lists: dig(obj, "spec", "template", 0, …).
func dig(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			v = asMap(v)[k]
		case int:
			l := asList(v)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// TestKubernetesManifestsAgree checks what no schema can: that the pieces refer to each other
// correctly — the kustomization lists every manifest (but the example Secret), the probes hit
// /healthz and /readyz on the port fenceline listens on, the PodMonitor and Service find the
// pods and the port, every volume has its ConfigMap/Secret/PVC, and the pod gets more time to
// stop than fenceline's drain timeout.
func TestKubernetesManifestsAgree(t *testing.T) {
	objs := kubeObjects(t)
	kust := objs["Kustomization/kustomization.yaml"]
	require.NotNil(t, kust)
	var listed []string
	for _, r := range asList(kust["resources"]) {
		listed = append(listed, r.(string))
	}
	for _, rel := range deployFiles(t, ".yaml") {
		dir, file := filepath.Split(rel)
		if dir == "kubernetes"+string(filepath.Separator) && file != "kustomization.yaml" && !strings.Contains(file, ".example.") {
			require.Contains(t, listed, file, "kustomization.yaml does not list %s", file)
		}
	}

	dep := objs["Deployment/fenceline"]
	require.NotNil(t, dep)
	pod := dig(dep, "spec", "template")
	podLabels := asMap(dig(pod, "metadata", "labels"))
	require.Equal(t, "Recreate", dig(dep, "spec", "strategy", "type"), "one session per client id: the old pod must be gone first")
	c := asMap(dig(pod, "spec", "containers", 0))
	require.Equal(t, []any{"run", "--config", "/etc/fenceline/fenceline.yaml", "--log-format", "json"}, c["args"])

	cfg, _ := kubeConfig(t, objs)
	_, listenPort, ok := strings.Cut(cfg.HTTP.Listen, ":")
	require.True(t, ok, "http.listen %q", cfg.HTTP.Listen)
	ports := map[string]string{}
	for _, p := range asList(c["ports"]) {
		ports[str(asMap(p)["name"])] = fmt.Sprint(asMap(p)["containerPort"])
	}
	require.Equal(t, listenPort, ports["metrics"], "container port metrics must be http.listen's")
	for _, tc := range []struct{ probe, path string }{{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}} {
		require.Equal(t, tc.path, dig(c, tc.probe, "httpGet", "path"), tc.probe)
		require.Equal(t, "metrics", dig(c, tc.probe, "httpGet", "port"), tc.probe)
	}
	grace, _ := dig(pod, "spec", "terminationGracePeriodSeconds").(int)
	require.Greater(t, time.Duration(grace)*time.Second, cfg.Ingest.DrainTimeout.D(), "terminationGracePeriodSeconds vs ingest.drain_timeout")

	pm := objs["PodMonitor/fenceline"]
	require.NotNil(t, pm)
	require.Equal(t, "metrics", dig(pm, "spec", "podMetricsEndpoints", 0, "port"))
	for k, v := range asMap(dig(pm, "spec", "selector", "matchLabels")) {
		require.Equal(t, v, podLabels[k], "PodMonitor selector %s", k)
	}
	// alerts.yml and the dashboards filter on job="fenceline".
	require.Equal(t, "fenceline", podLabels[str(dig(pm, "spec", "jobLabel"))], "PodMonitor jobLabel must make the job fenceline")
	svc := objs["Service/fenceline"]
	require.NotNil(t, svc)
	for k, v := range asMap(dig(svc, "spec", "selector")) {
		require.Equal(t, v, podLabels[k], "Service selector %s", k)
	}
	require.Equal(t, "metrics", dig(svc, "spec", "ports", 0, "targetPort"))

	for _, v := range asList(dig(pod, "spec", "volumes")) {
		v := asMap(v)
		switch {
		case v["configMap"] != nil:
			require.Contains(t, objs, "ConfigMap/"+str(dig(v, "configMap", "name")))
		case v["secret"] != nil:
			require.Contains(t, objs, "Secret/"+str(dig(v, "secret", "secretName")), "secret.example.yaml should show the Secret's shape")
		case v["persistentVolumeClaim"] != nil:
			require.Contains(t, objs, "PersistentVolumeClaim/"+str(dig(v, "persistentVolumeClaim", "claimName")))
		default:
			t.Fatalf("volume %v of an unexpected type", v)
		}
	}
}

// containerFS lays out a container's files in a temporary folder so that the daemon's own
// config loading and checking can run on them: files[containerPath] is either the host path
// to copy (a file or a folder) or, for generated content, the content itself.
type containerFS struct {
	root string
}

func newContainerFS(t testing.TB) *containerFS { return &containerFS{root: t.TempDir()} }

func (c *containerFS) path(containerPath string) string { return filepath.Join(c.root, containerPath) }

func (c *containerFS) write(t testing.TB, containerPath string, data []byte) {
	t.Helper()
	p := c.path(containerPath)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, data, 0o600))
}

// copy copies a host file or folder to containerPath.
func (c *containerFS) copy(t testing.TB, hostPath, containerPath string) {
	t.Helper()
	st, err := os.Stat(hostPath)
	require.NoError(t, err, "mounted path")
	if !st.IsDir() {
		data, err := os.ReadFile(hostPath)
		require.NoError(t, err)
		c.write(t, containerPath, data)
		return
	}
	require.NoError(t, filepath.WalkDir(hostPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(hostPath, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c.write(t, filepath.Join(containerPath, rel), data)
		return nil
	}))
}

// load runs config.Load on the container's config file, then moves every absolute path in it
// (secrets, rules, storage) under the temporary root, as the container would see them, and
// runs daemon.Check: the same as `fenceline check --config` inside the container.
func (c *containerFS) load(t testing.TB, configPath string) *config.Config {
	t.Helper()
	cfg, err := config.Load(c.path(configPath))
	require.NoError(t, err, "config.Load %s", configPath)
	paths := []*string{
		&cfg.MQTT.PasswordFile, &cfg.MQTT.TLS.CAFile, &cfg.MQTT.TLS.CertFile, &cfg.MQTT.TLS.KeyFile,
		&cfg.Influx.TokenFile, &cfg.Influx.TLS.CAFile, &cfg.Influx.TLS.CertFile, &cfg.Influx.TLS.KeyFile,
		&cfg.Storage.Dir, &cfg.RulesFile,
		&cfg.HTTP.TokenFile, &cfg.HTTP.TLS.CertFile, &cfg.HTTP.TLS.KeyFile,
		&cfg.Ingest.Signatures.KeyFile, &cfg.Privacy.KeyFile,
	}
	for i := range cfg.Webhooks {
		paths = append(paths, &cfg.Webhooks[i].SecretFile, &cfg.Webhooks[i].CAFile)
	}
	for _, p := range paths {
		if *p != "" && !strings.HasPrefix(*p, c.root) {
			*p = c.path(*p)
		}
	}
	require.NoError(t, daemon.Check(cfg), "fenceline check on %s", configPath)
	return cfg
}

// kubeConfig mounts the ConfigMap and the example Secret where the Deployment mounts them and
// loads and checks fenceline.yaml from there.
func kubeConfig(t testing.TB, objs map[string]map[string]any) (*config.Config, *containerFS) {
	t.Helper()
	fsys := newContainerFS(t)
	pod := dig(objs["Deployment/fenceline"], "spec", "template")
	mounts := map[string]string{}
	for _, m := range asList(dig(pod, "spec", "containers", 0, "volumeMounts")) {
		mounts[str(asMap(m)["name"])] = str(asMap(m)["mountPath"])
	}
	for _, v := range asList(dig(pod, "spec", "volumes")) {
		v := asMap(v)
		at := mounts[str(v["name"])]
		require.NotEmpty(t, at, "volume %s is not mounted", v["name"])
		switch {
		case v["configMap"] != nil:
			cm := objs["ConfigMap/"+str(dig(v, "configMap", "name"))]
			for k, val := range asMap(cm["data"]) {
				fsys.write(t, filepath.Join(at, k), []byte(str(val)))
			}
		case v["secret"] != nil:
			sec := objs["Secret/"+str(dig(v, "secret", "secretName"))]
			for k, val := range asMap(sec["stringData"]) {
				fsys.write(t, filepath.Join(at, k), []byte(str(val)))
			}
		}
	}
	args := asList(dig(pod, "spec", "containers", 0, "args"))
	i := slices.Index(args, any("--config"))
	require.GreaterOrEqual(t, i, 0, "args without --config")
	return fsys.load(t, str(args[i+1])), fsys
}

// composeFile is the part of compose.yaml the tests read.
type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Build   any      `yaml:"build"`
		Command []string `yaml:"command"`
		Volumes []string `yaml:"volumes"`
		Secrets []string `yaml:"secrets"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "deploy", "compose", "compose.yaml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(data, &c))
	return c
}

// TestComposeMountsExist checks that every bind mount of compose.yaml names a file in the
// repository — but the secrets the operator creates under secrets/ — and every named volume
// and secret is declared.
func TestComposeMountsExist(t *testing.T) {
	c := loadCompose(t)
	require.NotEmpty(t, c.Services)
	for _, want := range []string{"mosquitto", "influxdb", "fenceline", "grafana", "prometheus"} {
		require.Contains(t, c.Services, want)
	}
	dir := repoPath(t, "deploy", "compose")
	for name, svc := range c.Services {
		require.True(t, svc.Image != "" || svc.Build != nil, "service %s has neither image nor build", name)
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			require.True(t, ok, "service %s volume %q", name, v)
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				require.Contains(t, c.Volumes, src, "service %s: named volume %s not declared", name, src)
				continue
			}
			if strings.HasPrefix(src, "./secrets/") {
				continue // created by the operator, never in git
			}
			_, err := os.Stat(filepath.Join(dir, src))
			require.NoError(t, err, "service %s mounts %s", name, src)
		}
		for _, s := range svc.Secrets {
			require.Contains(t, c.Secrets, s, "service %s: secret %s not declared", name, s)
		}
	}
}

// composeConfig lays out the fenceline container's files from compose.yaml's bind mounts and
// secrets (placeholders for the secrets) and loads and checks its fenceline.yaml.
func composeConfig(t testing.TB) *config.Config {
	t.Helper()
	c := loadCompose(t)
	svc := c.Services["fenceline"]
	dir := repoPath(t, "deploy", "compose")
	fsys := newContainerFS(t)
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if !strings.HasPrefix(parts[0], ".") {
			continue // a named volume: storage, empty at first start
		}
		fsys.copy(t, filepath.Join(dir, parts[0]), parts[1])
	}
	for _, s := range svc.Secrets {
		// compose mounts a secret at /run/secrets/<name>; the real one is the operator's.
		fsys.write(t, "/run/secrets/"+s, []byte("placeholder-secret-for-the-test-0123456789"))
	}
	i := slices.Index(svc.Command, "--config")
	require.GreaterOrEqual(t, i, 0, "fenceline command without --config")
	return fsys.load(t, svc.Command[i+1])
}

// TestEmbeddedConfigsPassCheck runs `fenceline check` semantics (config.Load, then
// daemon.Check: every file named, the rules compiled) on the fenceline.yaml of the compose
// stack and of the Kubernetes ConfigMap, each laid out as its container sees it.
func TestEmbeddedConfigsPassCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(t *testing.T) *config.Config
	}{
		{"compose", func(t *testing.T) *config.Config { return composeConfig(t) }},
		{"kubernetes", func(t *testing.T) *config.Config { cfg, _ := kubeConfig(t, kubeObjects(t)); return cfg }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.load(t)
			// Both listen beyond loopback for Prometheus; the reload endpoint must then be
			// protected (config validation insists too).
			require.NotEmpty(t, cfg.HTTP.TokenFile, "http.token_file")
			require.Equal(t, "fenceline", cfg.MQTT.Username, "the broker account of deploy/mosquitto/fenceline.acl")
		})
	}
}

// unitFile is a parsed systemd unit: section → key → values (a key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t testing.TB, data []byte) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			require.NotContains(t, u, section, "line %d: section [%s] repeated", n, section)
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "line %d: %q is neither a section, a comment nor key=value", n, line)
			require.NotEmpty(t, section, "line %d: key before any section", n)
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	require.NoError(t, sc.Err())
	return u
}

// TestSystemdUnit checks the unit's structure, its commands and the hardening it promises.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, "deploy", "systemd", "fenceline.service"))
	require.NoError(t, err)
	u := parseUnit(t, data)
	for _, s := range []string{"Unit", "Service", "Install"} {
		require.Contains(t, u, s)
	}
	svc := u["Service"]
	require.Len(t, svc["ExecStart"], 1)
	require.Regexp(t, `^/\S+/fenceline run --config /\S+`, svc["ExecStart"][0])
	require.Equal(t, []string{"/bin/kill -HUP $MAINPID"}, svc["ExecReload"])
	stop, err := time.ParseDuration(svc["TimeoutStopSec"][0])
	require.NoError(t, err)
	require.Greater(t, stop, config.Default().Ingest.DrainTimeout.D(), "TimeoutStopSec vs the default ingest.drain_timeout")
	for _, tc := range []struct{ key, want string }{
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"PrivateTmp", "yes"},
		{"CapabilityBoundingSet", ""},
		{"StateDirectory", "fenceline"},
		{"ReadWritePaths", "/var/lib/fenceline"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
	} {
		require.Equal(t, []string{tc.want}, svc[tc.key], tc.key)
	}
	require.NotEmpty(t, svc["MemoryMax"])
	require.True(t, svc["User"] != nil || slices.Equal(svc["DynamicUser"], []string{"yes"}), "an unprivileged user")
	// ProcSubset=pid hides /proc/stat, which the process collector needs: /metrics would 500.
	require.NotContains(t, svc["ProcSubset"], "pid")
	require.Equal(t, []string{"multi-user.target"}, u["Install"]["WantedBy"])
}

// mosquittoOptions reads a mosquitto.conf's options (the last value of each, as mosquitto
// applies single-valued options), skipping comments.
func mosquittoOptions(t testing.TB, rel string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "deploy", rel))
	require.NoError(t, err)
	opts := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		opts[k] = strings.TrimSpace(v)
	}
	return opts
}

// TestBrokerConfigsAgree checks that the compose broker keeps the production broker's queue
// and persistence settings, and that max_queued_bytes is one mosquitto 2.0 reads as meant: it
// parses the value as a 32-bit int, so 2^31 and above wrap (4294967297 became a 1-byte bound
// in a measurement here, letting one queued message through).
func TestBrokerConfigsAgree(t *testing.T) {
	prod := mosquittoOptions(t, "mosquitto/mosquitto.conf")
	compose := mosquittoOptions(t, "compose/mosquitto.conf")
	for _, k := range []string{"persistence", "autosave_interval", "max_queued_messages", "max_queued_bytes",
		"max_inflight_messages", "persistent_client_expiration", "max_packet_size", "allow_anonymous", "per_listener_settings"} {
		require.NotEmpty(t, prod[k], "deploy/mosquitto/mosquitto.conf: %s", k)
		require.Equal(t, prod[k], compose[k], "compose/mosquitto.conf: %s", k)
	}
	// The broker's window paces delivery only below fenceline's own in-flight bound, and it is
	// wide enough (about a second at 2,000 messages/s) that an InfluxDB hiccup does not hold
	// back new messages, alerts included.
	window, err := strconv.Atoi(prod["max_inflight_messages"])
	require.NoError(t, err)
	require.Less(t, window, config.Default().Ingest.MaxInflight, "max_inflight_messages under ingest.max_inflight")
	require.GreaterOrEqual(t, window, 1500, "max_inflight_messages covers a storage hiccup")
	qb, err := strconv.ParseInt(prod["max_queued_bytes"], 10, 64)
	require.NoError(t, err)
	require.True(t, qb > 0 && qb < 1<<31, "max_queued_bytes %d: mosquitto 2.0 wraps values from 2^31", qb)
	// The compose broker mounts the production ACL where its acl_file points.
	c := loadCompose(t)
	require.Contains(t, c.Services["mosquitto"].Volumes, "../mosquitto/fenceline.acl:"+compose["acl_file"]+":ro")
}

// TestRunbookCoversDeadLetterReasons keeps docs/runbook.md's table of rejection reasons
// complete: an operator reading a dead letter must find what its reason means.
func TestRunbookCoversDeadLetterReasons(t *testing.T) {
	runbook, err := os.ReadFile(repoPath(t, "docs", "runbook.md"))
	require.NoError(t, err)
	// storage_rejected is the pipeline's own: lines InfluxDB refused for good.
	reasons := append([]string{"storage_rejected", "over_budget"}, devicesig.Reasons...)
	for _, r := range decode.Reasons {
		reasons = append(reasons, string(r))
	}
	for _, r := range reasons {
		require.Contains(t, string(runbook), "| `"+r+"` |", "docs/runbook.md: reason %s", r)
	}
}
