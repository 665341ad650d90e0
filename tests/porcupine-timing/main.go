// Porcupine's check-only time on the histories of tests/data/porcupine, for
// BENCHMARKS.md: every history is parsed first, then only porcupine.CheckEvents is
// timed. A manual measurement (see README.md), not part of `cargo xtask test`.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// ---- the etcd compare-and-set register (Porcupine's etcd test semantics) ----

type etcdInput struct {
	op       byte // 'r' read, 'w' write, 'c' compare-and-set
	from, to int
}

type etcdOutput struct {
	ok, exists, unknown bool
	value               int
}

// nilValue stands for the register holding nothing.
const nilValue = -1 << 40

var etcdModel = porcupine.Model{
	Init: func() interface{} { return nilValue },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(int), input.(etcdInput), output.(etcdOutput)
		switch in.op {
		case 'r':
			legal := out.unknown || (out.exists && out.value == st) || (!out.exists && st == nilValue)
			return legal, st
		case 'w':
			return true, in.from
		default:
			matches := st == in.from
			next := st
			if matches {
				next = in.to
			}
			return out.unknown || out.ok == matches, next
		}
	},
	Hash: func(state interface{}) uint64 { return uint64(state.(int)) },
}

// fields of an etcd log line after "jepsen.util -": process, type, function, value.
func etcdFields(line string) (int, string, string, string, bool) {
	i := strings.Index(line, "jepsen.util")
	if i < 0 {
		return 0, "", "", "", false
	}
	f := strings.Fields(line[i+len("jepsen.util"):])
	if len(f) < 5 || f[0] != "-" {
		return 0, "", "", "", false
	}
	p, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, "", "", "", false
	}
	return p, f[2], f[3], strings.Join(f[4:], " "), true
}

func pair(v string) (int, int) {
	f := strings.Fields(strings.Trim(v, "[]"))
	a, _ := strconv.Atoi(f[0])
	b, _ := strconv.Atoi(f[1])
	return a, b
}

// parseEtcd reads the log as Porcupine's own test does: :info lines leave the
// operation open, and operations still open at the end return "unknown" last.
func parseEtcd(path string) []porcupine.Event {
	var events []porcupine.Event
	open := map[int]int{}
	next := 0
	ret := func(p int, out etcdOutput) {
		events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.ReturnEvent, Value: out, Id: open[p]})
		delete(open, p)
	}
	for _, line := range lines(path) {
		p, typ, f, v, ok := etcdFields(line)
		if !ok {
			continue
		}
		switch {
		case typ == ":invoke":
			in := etcdInput{op: f[1]}
			switch f {
			case ":write":
				in.from, _ = strconv.Atoi(v)
			case ":cas":
				in.from, in.to = pair(v)
			}
			events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.CallEvent, Value: in, Id: next})
			open[p] = next
			next++
		case typ == ":ok" && f == ":read":
			n, err := strconv.Atoi(v)
			ret(p, etcdOutput{exists: err == nil, value: n})
		case typ == ":ok":
			ret(p, etcdOutput{ok: true})
		case typ == ":fail" && f == ":cas":
			ret(p, etcdOutput{ok: false})
		case typ == ":fail" && f == ":read":
			ret(p, etcdOutput{unknown: true})
		}
	}
	for p := range open {
		ret(p, etcdOutput{unknown: true})
	}
	return events
}

// ---- the key-value store (get, put, append), split by key or whole ----

type kvInput struct {
	op         byte // 'g' get, 'p' put, 'a' append
	key, value string
}

type kvOutput struct{ value string }

func kvStep(st string, in kvInput, out kvOutput) (bool, string) {
	switch in.op {
	case 'g':
		return out.value == st, st
	case 'p':
		return true, in.value
	default:
		return true, st + in.value
	}
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// kvByKey: one part per key (Porcupine's Partition), a state is one key's value.
var kvByKey = porcupine.Model{
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		parts := map[string][]porcupine.Event{}
		keyOf := map[int]string{}
		for _, e := range history {
			if e.Kind == porcupine.CallEvent {
				keyOf[e.Id] = e.Value.(kvInput).key
			}
			k := keyOf[e.Id]
			parts[k] = append(parts[k], e)
		}
		keys := make([]string, 0, len(parts))
		for k := range parts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Event, 0, len(keys))
		for _, k := range keys {
			out = append(out, parts[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return kvStep(state.(string), input.(kvInput), output.(kvOutput))
	},
	Hash: func(state interface{}) uint64 { return hashString(state.(string)) },
}

// kvWhole: no partition, a state is the whole map (copied on write).
var kvWhole = porcupine.Model{
	Init: func() interface{} { return map[string]string{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in := state.(map[string]string), input.(kvInput)
		legal, v := kvStep(st[in.key], in, output.(kvOutput))
		if !legal || in.op == 'g' {
			return legal, st
		}
		next := make(map[string]string, len(st)+1)
		for k, x := range st {
			next[k] = x
		}
		next[in.key] = v
		return true, next
	},
	Equal: func(a, b interface{}) bool {
		x, y := a.(map[string]string), b.(map[string]string)
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	},
	Hash: func(state interface{}) uint64 {
		var h uint64
		for k, v := range state.(map[string]string) {
			h ^= hashString(k + "\x00" + v)
		}
		return h
	},
}

// field returns the text after `name ` up to the next ", :" or "}".
func field(line, name string) string {
	i := strings.Index(line, name+" ")
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+1:]
	if j := strings.Index(rest, ", :"); j >= 0 {
		rest = rest[:j]
	}
	return strings.TrimSuffix(rest, "}")
}

func unquote(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "\""), "\"") }

// parseKv reads the EDN lines as Porcupine's own test does: operations still open at
// the end return last with an empty output.
func parseKv(path string) []porcupine.Event {
	var events []porcupine.Event
	open := map[int]int{}
	next := 0
	for _, line := range lines(path) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		p, _ := strconv.Atoi(field(line, ":process"))
		f := field(line, ":f")
		switch field(line, ":type") {
		case ":invoke":
			in := kvInput{op: f[1], key: unquote(field(line, ":key"))}
			if in.op != 'g' {
				in.value = unquote(field(line, ":value"))
			}
			events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.CallEvent, Value: in, Id: next})
			open[p] = next
			next++
		case ":ok":
			out := kvOutput{}
			if f == ":get" {
				out.value = unquote(field(line, ":value"))
			}
			events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.ReturnEvent, Value: out, Id: open[p]})
			delete(open, p)
		}
	}
	for p, id := range open {
		events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.ReturnEvent, Value: kvOutput{}, Id: id})
	}
	return events
}

// ---- timing ----

func lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}

type history struct {
	name     string
	events   []porcupine.Event
	expected bool
}

func load(dir, folder string, parse func(string) []porcupine.Event) []history {
	var out []history
	for _, line := range lines(filepath.Join(dir, "VERDICTS.txt")) {
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(f[0], folder+"/") {
			continue
		}
		out = append(out, history{f[0], parse(filepath.Join(dir, f[0])), f[1] == "true"})
	}
	return out
}

// timeSet checks every history of `set` once per repetition (verdicts asserted) and
// prints the median and the fastest repetition.
func timeSet(label string, model porcupine.Model, set []history, reps int) {
	var runs []time.Duration
	for r := 0; r < reps; r++ {
		start := time.Now()
		for _, h := range set {
			if porcupine.CheckEvents(model, h.events) != h.expected {
				panic(fmt.Sprintf("%s: wrong verdict", h.name))
			}
		}
		runs = append(runs, time.Since(start))
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i] < runs[j] })
	fmt.Printf("%-44s %3d histories  median %12v  fastest %12v  (%d runs)\n",
		label, len(set), runs[len(runs)/2], runs[0], reps)
}

func main() {
	dir := flag.String("data", "../data/porcupine", "tests/data/porcupine")
	reps := flag.Int("reps", 20, "repetitions of the etcd and split kv sets")
	wholeReps := flag.Int("whole-reps", 3, "repetitions of the c01 and c10 whole-store set (0: skip)")
	wholeTimeout := flag.Duration("whole-timeout", 120*time.Second, "budget of each c50 whole-store check (0: skip)")
	flag.Parse()

	// Parse everything before any timer starts.
	etcd := load(*dir, "jepsen", parseEtcd)
	kv := load(*dir, "kv", parseKv)
	if len(etcd) != 102 || len(kv) != 6 {
		panic(fmt.Sprintf("expected 102 etcd and 6 kv histories, found %d and %d", len(etcd), len(kv)))
	}
	var small, c50 []history
	for _, h := range kv {
		if strings.Contains(h.name, "c50") {
			c50 = append(c50, h)
		} else {
			small = append(small, h)
		}
	}
	fmt.Printf("porcupine check only (parse excluded), GOMAXPROCS %d\n", runtime.GOMAXPROCS(0))
	timeSet("etcd, all 102", etcdModel, etcd, *reps)
	timeSet("kv, all 6, split by key", kvByKey, kv, *reps)
	if *wholeReps > 0 {
		timeSet("kv c01 and c10, whole (no partition)", kvWhole, small, *wholeReps)
	}
	for _, h := range c50 {
		if *wholeTimeout == 0 {
			break
		}
		start := time.Now()
		res := porcupine.CheckEventsTimeout(kvWhole, h.events, *wholeTimeout)
		fmt.Printf("%-44s result %v after %v (one run, budget %v)\n",
			h.name+", whole (no partition)", res, time.Since(start), *wholeTimeout)
	}
}
