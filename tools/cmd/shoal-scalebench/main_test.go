package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoalmesh/shoal/scale"
)

// TestCommittedShapesAreGenerated: the traces under
// scale/testdata/traces/shapes are exactly what the seeded generator
// makes, so none was edited by hand (to favour a scaler or otherwise).
func TestCommittedShapesAreGenerated(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "scale", "testdata", "traces", "shapes")
	for _, s := range shapeNames {
		for _, sd := range shapeSeeds {
			tr, err := generateShape(s, sd)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := scale.WriteTrace(&b, tr); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, tr.Name+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b.Bytes()) {
				t.Errorf("%s.csv differs from the generator's output: regenerate with (cd tools && go run ./cmd/shoal-scalebench -gen-shapes ../scale/testdata/traces/shapes)", tr.Name)
			}
		}
	}
	if _, err := generateShape("sawtooth", 1); err == nil {
		t.Error("an unknown shape was generated")
	}
}

// TestRunPrintsTheTables runs the bench on one shape, one boot time.
func TestRunPrintsTheTables(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-boot", "30s", "-shape", "osc40",
		"-shapes", filepath.Join("..", "..", "..", "scale", "testdata", "traces", "shapes"),
		"-traces", filepath.Join("..", "..", "..", "scale", "testdata", "traces")}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Boot 30s: per shape", "| osc40 | Shoal policy, defaults", "| osc40 | HPA (faithful", "issue 16's targets"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-boot", "soon"}, &out); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("bad -boot: %v", err)
	}
}
