package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ternmesh/tern/router/meshsim"
)

// cmdSim runs a mesh scenario in the simulator under Tern's routing,
// epidemic forwarding and flooding (same seed) and prints a markdown table:
// `tern sim [--seed N] [--only tern|epidemic|flooding] <scenario.json>`.
func cmdSim(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(out)
	seed := fs.Uint64("seed", 0, "override the scenario's seed")
	only := fs.String("only", "", "run one protocol: tern, epidemic or flooding")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("`tern sim` needs one scenario file, e.g. tern sim router/meshsim/testdata/city100.json")
	}
	sc, err := meshsim.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	if *seed != 0 {
		sc.Seed = *seed
	}
	var rs []meshsim.Report
	if *only == "" {
		if rs, err = meshsim.Compare(sc); err != nil {
			return err
		}
	} else {
		p, ok := map[string]meshsim.Protocol{"tern": meshsim.Tern, "epidemic": meshsim.Epidemic, "flooding": meshsim.Flood}[*only]
		if !ok {
			return fmt.Errorf("--only %q: use tern, epidemic or flooding", *only)
		}
		s, err := meshsim.New(sc, p)
		if err != nil {
			return err
		}
		rs = []meshsim.Report{s.Run()}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "Scenario %s, %d nodes, seed %d, %v of virtual time.\n\n", sc.Name, sc.Nodes, sc.Seed, time.Duration(sc.Duration))
	meshsim.WriteTable(out, rs)
	return nil
}
