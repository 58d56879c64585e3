package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/doorbridge/doorbridge/config"
)

// There is no Docker engine in CI: these tests hold the Dockerfile,
// scripts/build-release.sh (which builds the image's binary for every
// architecture) and docker-compose.yml to what the README promises.

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildLine is the one line of a file that starts with the build command.
func buildLine(t *testing.T, name string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(readRepoFile(t, name), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "CGO_ENABLED=0 GOOS=") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%s: %d build lines (CGO_ENABLED=0 GOOS=...), want 1", name, len(lines))
	}
	return lines[0]
}

func TestReleaseBuildMatchesDockerfile(t *testing.T) {
	docker, script := buildLine(t, "Dockerfile"), buildLine(t, "scripts/build-release.sh")
	if docker != script {
		t.Fatalf("the build lines differ: the release binaries would not be the image's\nDockerfile:       %s\nbuild-release.sh: %s", docker, script)
	}
	for _, want := range []string{`CGO_ENABLED=0`, `GOOS="$TARGETOS"`, `GOARCH="$TARGETARCH"`, `GOARM="${TARGETVARIANT#v}"`,
		`go build -trimpath`, `-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT"`, `./cmd/doorbridge`} {
		if !strings.Contains(docker, want) {
			t.Errorf("build line lacks %s: %s", want, docker)
		}
	}
	_ = version // the variable -X main.version sets
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		if !strings.Contains(readRepoFile(t, "scripts/build-release.sh"), p) {
			t.Errorf("build-release.sh does not build %s", p)
		}
	}
	if st, err := os.Stat(filepath.Join("..", "..", "scripts", "build-release.sh")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("scripts/build-release.sh is not executable (%v)", err)
	}
}

func TestDockerfile(t *testing.T) {
	df := readRepoFile(t, "Dockerfile")
	var instr []string // instructions, comments and continuations dropped
	for _, l := range strings.Split(df, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, " ") {
			instr = append(instr, l)
		}
	}
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build",
		"ARG TARGETOS",
		"ARG TARGETARCH",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"ENV DOORBRIDGE_CONFIG=/config/config.yaml",
		"USER nonroot",
		"EXPOSE 9180",
		`HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/doorbridge", "healthcheck"]`,
		"STOPSIGNAL SIGTERM",
		`ENTRYPOINT ["/doorbridge"]`,
	} {
		if !slices.Contains(instr, want) {
			t.Errorf("Dockerfile lacks the instruction %s", want)
		}
	}
	// The image's Go is the one go.mod asks for.
	goMod := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if goMod == nil || !slices.Contains(instr, "ARG GO_VERSION="+goMod[1]) {
		t.Errorf("Dockerfile's ARG GO_VERSION is not go.mod's go %v", goMod)
	}
	for _, dev := range []string{"--device /dev/gpiochip0", "--device /dev/i2c-1", "--device /dev/ttyUSB0", "--group-add"} {
		if !strings.Contains(df, dev) {
			t.Errorf("Dockerfile does not document %s", dev)
		}
	}
}

// compose is the part of docker-compose.yml checked here.
type compose struct {
	Services map[string]struct {
		Image           string   `yaml:"image"`
		Build           string   `yaml:"build"`
		Restart         string   `yaml:"restart"`
		StopGracePeriod string   `yaml:"stop_grace_period"`
		Profiles        []string `yaml:"profiles"`
		Volumes         []string `yaml:"volumes"`
		Privileged      bool     `yaml:"privileged"`
		Healthcheck     struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func TestDockerCompose(t *testing.T) {
	var c compose
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.yml")), &c); err != nil {
		t.Fatal(err)
	}
	db, mq, ha := c.Services["doorbridge"], c.Services["mosquitto"], c.Services["homeassistant"]
	if db.Build != "." || db.StopGracePeriod != "10s" || db.Restart != "unless-stopped" || db.Privileged {
		t.Errorf("doorbridge service: build %q, stop_grace_period %q, restart %q, privileged %v", db.Build, db.StopGracePeriod, db.Restart, db.Privileged)
	}
	if !slices.Equal(db.Healthcheck.Test, []string{"CMD", "/doorbridge", "healthcheck"}) {
		t.Errorf("doorbridge healthcheck %q", db.Healthcheck.Test)
	}
	if !slices.Contains(db.Volumes, "./config.yaml:/config/config.yaml:ro") || !slices.ContainsFunc(db.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
		t.Errorf("doorbridge volumes %q: want the config at /config/config.yaml and a volume on /data", db.Volumes)
	}
	if mq.Image != "eclipse-mosquitto:2" || mq.Restart != "unless-stopped" || len(mq.Healthcheck.Test) == 0 ||
		!slices.Contains(mq.Volumes, "./configs/docker/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro") ||
		!slices.Contains(mq.Volumes, "./configs/mosquitto/acl:/mosquitto/config/acl:ro") {
		t.Errorf("mosquitto service: %+v", mq)
	}
	// The container's mosquitto.conf keeps configs/mosquitto's security, with
	// the files where compose mounts them.
	conf := strings.Split(readRepoFile(t, "configs/docker/mosquitto.conf"), "\n")
	for _, want := range []string{"allow_anonymous false", "password_file /mosquitto/config/passwd", "acl_file /mosquitto/config/acl", "listener 1883",
		"max_queued_messages 1000", "max_queued_bytes 16777216", "memory_limit 268435456"} {
		if !slices.Contains(conf, want) {
			t.Errorf("configs/docker/mosquitto.conf lacks %q", want)
		}
	}
	if !slices.Contains(mq.Volumes, "./secrets/mosquitto_passwd:/mosquitto/config/passwd:ro") {
		t.Errorf("mosquitto volumes %q: want the password file at /mosquitto/config/passwd", mq.Volumes)
	}
	if !slices.Equal(ha.Profiles, []string{"ha"}) || ha.Restart != "unless-stopped" {
		t.Errorf("homeassistant: profiles %q restart %q; want an optional service (profile ha)", ha.Profiles, ha.Restart)
	}

	// The config compose mounts fits the image: metrics and /readyz on the
	// exposed port, state and the audit file on the /data volume.
	cfg, err := config.Load(filepath.Join("..", "..", "configs", "examples", "docker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "0.0.0.0:9180" || cfg.Bridge.StateDir != "/data" || !strings.HasPrefix(cfg.Audit.File, "/data/") || cfg.MQTT.URL != "tcp://mosquitto:1883" {
		t.Errorf("configs/examples/docker.yaml: http.listen %q, state_dir %q, audit.file %q, mqtt.url %q", cfg.HTTP.Listen, cfg.Bridge.StateDir, cfg.Audit.File, cfg.MQTT.URL)
	}
}
