package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/console"
	_ "github.com/doorbridge/doorbridge/drivers/all"
	"github.com/doorbridge/doorbridge/drivers/gpio"
	"github.com/doorbridge/doorbridge/httpapi"
	"github.com/doorbridge/doorbridge/internal/sdnotify"
)

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "", "config file (default $DOORBRIDGE_CONFIG, then "+config.DefaultPath+")")
}

// parseFlags parses a subcommand's flags. -h lists them (exit 0); an
// argument left over is an error, because a config file named without -c
// would otherwise be ignored and the default config read instead. done
// reports that the command ends here with code.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string) (code int, done bool) {
	out := fs.Output()
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: doorbridge %s\n", synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err), true
	}
	if fs.NArg() == 0 {
		return 0, false
	}
	fmt.Fprintf(out, "doorbridge %s: unexpected argument %q", fs.Name(), fs.Arg(0))
	if fs.Lookup("c") != nil && looksLikeConfig(fs.Arg(0)) {
		fmt.Fprintf(out, ": a config file is given with -c (doorbridge %s -c %s)", fs.Name(), fs.Arg(0))
	}
	fmt.Fprintf(out, "\nusage: doorbridge %s\n", synopsis)
	return 2, true
}

// flagExit is the exit code of a flag parse error: 0 for -h, else 2.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func looksLikeConfig(arg string) bool {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.Mode().IsRegular()
}

// noGCUntilOff stops the garbage collector until every relay has been
// written off, and returns what starts it again (as GOGC had it). The
// config's parse leaves garbage that crossed the 4 MB minimum heap in most
// 64-door starts, and twice at 256: one or two collection cycles, each with
// its stop-the-world pauses, ran between exec and the off writes. That
// garbage (about 4 MB at 256 doors) now waits for the first cycle after
// Open, which bounds its own wait for the off writes.
func noGCUntilOff() (restore func()) {
	percent := debug.SetGCPercent(-1)
	return func() { debug.SetGCPercent(percent) }
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if code, done := parseFlags(fs, args, "run [-c FILE] [-log-format text|json] [-log-level info]"); done {
		return code
	}
	// Catch SIGTERM from the start: one that arrives while the config loads
	// or the relays are opened still ends in the orderly shutdown (every
	// relay off, offline published, exit 0), not in the default death.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "doorbridge: -log-level: %v\n", err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	if *logFormat == "json" {
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	}
	slog.SetDefault(log)

	restoreGC := noGCUntilOff()
	defer restoreGC()
	cfg, err := config.Load(config.Path(*file))
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	// Under systemd with Type=notify: READY, STOPPING and WATCHDOG pings
	// (the last only from the control loop).
	notifier, err := sdnotify.FromEnv()
	if err != nil {
		log.Error("systemd notification socket", "err", err)
		return 1
	}
	// Open writes every relay off before anything touches the network.
	b, err := bridge.Open(cfg, bridge.Options{Log: log, Version: version, Notifier: notifier})
	restoreGC()
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	// What a crash would leave the GPIO relays doing (the pinctrl module
	// parameters of this kernel, the pins' power-up pulls).
	for _, w := range gpioRelayWarnings(cfg, gpio.ReleasedOutputs(sysRoot)) {
		log.Warn(w)
	}
	if cfg.HTTP.Listen != "" {
		h := httpapi.Handler(b)
		if cfg.HTTP.ConsoleEnabled() {
			h = console.New(b, cfg, log).Handler(h)
		}
		tlsCfg, err := cfg.HTTP.ServerTLS()
		addr := ""
		if err == nil {
			addr, err = httpapi.Serve(ctx, cfg.HTTP.Listen, h, tlsCfg, log)
		}
		if err != nil {
			log.Error("http listener", "err", err)
			stop()
			b.Run(ctx) // still turns everything off and publishes offline
			return 1
		}
		log.Info("http listening", "addr", addr, "console", cfg.HTTP.Console, "tls", cfg.HTTP.TLS())
	}
	log.Info("doorbridge starting", "version", version, "config", cfg.File, "doors", len(cfg.Doors))
	if err := b.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped: every relay off")
	os.Stdout.Sync()
	return 0
}
