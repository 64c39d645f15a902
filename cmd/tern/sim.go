package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/ternmesh/tern/router/meshsim"
)

// cmdSim runs a mesh scenario in the simulator under Tern's routing,
// epidemic forwarding and flooding (same seed) and prints a markdown table:
// `tern sim [--seed N | --seeds A-B] [--only tern|epidemic|flooding] <scenario.json>`.
// With --seeds it runs every seed in the range (on all cores) and prints
// the mean per protocol with the delivered count of each seed.
func cmdSim(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(out)
	seed := fs.Uint64("seed", 0, "override the scenario's seed")
	only := fs.String("only", "", "run one protocol: tern, epidemic or flooding")
	seedRange := fs.String("seeds", "", "run seeds A-B (e.g. 1-8) and print the means")
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
	if *seedRange != "" {
		var a, b uint64
		if _, err := fmt.Sscanf(*seedRange, "%d-%d", &a, &b); err != nil || a == 0 || b < a || b-a > 999 {
			return fmt.Errorf("--seeds %q: give a range of seeds like 1-8 (first >= 1, at most 1000)", *seedRange)
		}
		if *only != "" || *seed != 0 {
			return fmt.Errorf("--seeds runs every protocol over the range; drop --only and --seed")
		}
		var seeds []uint64
		for s := a; s <= b; s++ {
			seeds = append(seeds, s)
		}
		bySeed, err := meshsim.Seeds(sc, seeds, runtime.GOMAXPROCS(0))
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(out, "Scenario %s, %d nodes, seeds %d-%d, %v of virtual time each; means over the seeds.\n\n", sc.Name, sc.Nodes, a, b, time.Duration(sc.Duration))
		meshsim.WriteMeans(out, meshsim.Means(bySeed))
		return nil
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
