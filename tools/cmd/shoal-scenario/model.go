package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shoalmesh/shoal/internal/largen"
	"github.com/shoalmesh/shoal/mesh"
)

// ModelResult is one run of the dissemination model.
type ModelResult struct {
	Command string         `json:"command"`
	Config  mesh.SimConfig `json:"config"`
	Result  mesh.SimResult `json:"result"`
	Elapsed float64        `json:"elapsed_s"`
}

func runModelCmd(args []string, stdout, stderr io.Writer) int {
	cfg := largen.Defaults()
	var dur, warm time.Duration
	var out, command string
	var logf func(string, ...any)
	fs := flag.NewFlagSet("model", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.N, "n", 10000, "members")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the links, the starved hosts and the loads")
	fs.Float64Var(&cfg.Loss, "loss", cfg.Loss, "share of packets lost")
	fs.DurationVar(&cfg.LatencyMin, "latency-min", cfg.LatencyMin, "least one-way latency of a link")
	fs.DurationVar(&cfg.LatencyMax, "latency-max", cfg.LatencyMax, "greatest one-way latency of a link")
	fs.Float64Var(&cfg.Starved, "starved", cfg.Starved, "share of hosts short of CPU")
	fs.DurationVar(&cfg.StarvedJitter, "starved-delay", cfg.StarvedJitter, "extra wait of a starved host's packets")
	fs.DurationVar(&cfg.ChangeEvery, "change-every", cfg.ChangeEvery, "mean time between a node's load moving past a bucket")
	fs.DurationVar(&cfg.ConfirmInterval, "confirm", 0, "confirm interval (0: the mesh's default for N, mesh.ConfirmIntervalFor)")
	fs.DurationVar(&dur, "duration", 60*time.Second, "simulated time")
	fs.DurationVar(&warm, "warmup", 20*time.Second, "simulated time before ages and rates count")
	fs.StringVar(&out, "out", "", "also write the result here as JSON")
	return runScenario(fs, args, stdout, stderr, &command, &logf, func(context.Context) (report, error) {
		sc := largen.ModelConfig(cfg)
		sc.Duration, sc.Warmup = dur, warm
		t0 := time.Now()
		logf("model: N=%d, %v simulated", sc.Nodes, dur)
		r := mesh.SimulateDissemination(sc)
		return &ModelResult{Command: command, Config: sc, Result: r, Elapsed: time.Since(t0).Seconds()}, nil
	}, &out)
}

// Table prints the model's figures.
func (r *ModelResult) Table() string {
	x := r.Result
	return fmt.Sprintf("%s\nN=%d, confirm every %v, run took %.0f s\nbytes/node/s %.0f, packets/node/s %.1f\nload age p50 / p99 / max %.2f / %.2f / %.2f s\nwants / answers / full entries per node/s %.1f / %.1f / %.1f\npairs without load %d, holding another state %.2f%%\n",
		r.Command, r.Config.Nodes, x.ConfirmInterval, r.Elapsed, x.BytesPerNodePerSec, x.PacketsPerNodePerSec,
		x.AgeP50.Seconds(), x.AgeP99.Seconds(), x.AgeMax.Seconds(), x.WantsPerNodePerSec, x.AnswersPerNodePerSec, x.FullsPerNodePerSec, x.Missing, 100*x.Wrong)
}

// WriteFile writes the result as JSON.
func (r *ModelResult) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
