// Package discover sends standing data to the catalog access reviews that
// have just started (product.md, "Standing data and review discovery").
//
// One run lists the review instances in Initializing (one Graph list),
// and only when there are some, the standing prefix (one S3 list). Each
// instance whose scope covers a catalog with standing data is paired with
// the catalog's custom data provided resources (listed once per catalog
// per run); each pair is served on its own:
//
//   - a resource without usable standing data gets a no-data review record,
//     a warning and a metric, once per instance; a later run that finds
//     data still sends it;
//   - otherwise the session is found or created through the same lifecycle
//     code as ingest, with the window anchored on the review; the chosen
//     file names are recorded as the session's manifest before anything is
//     uploaded, so that the manifest-complete close, the finalizer and
//     crash recovery apply unchanged; each chosen version is uploaded
//     exactly once under its claim (the same claims as ingest's, per
//     session and object version), streamed and validated again while it
//     streams; and the session is closed as soon as all are in.
//
// The review record at <STATE_PREFIX>reviews/<instance>/<resource>.json says
// what happened; the lifecycle brings it up to date when the session ends.
//
// What a crash leaves: before the manifest write, nothing but a review
// record saying uploading (the next run goes on). After the manifest and
// before a file's upload, a held claim that lapses (the next run takes it
// over). After an upload and before its ledger write, a claim that the next
// run resumes: it asks Graph for the session's files before uploading
// again. After the last file, an open session with a complete manifest,
// which the next run or the finalizer closes.
package discover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/byodrop/byodrop/internal/deadline"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/lifecycle"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/standing"
)

// Reviews is what a run needs of the access reviews reads
// (*graph.Reviews has it).
type Reviews interface {
	ListInstances(ctx context.Context, status string, walk func(*graph.Definition) bool) (*graph.InstanceList, error)
	GetDefinition(ctx context.Context, definitionID string) (*graph.Definition, error)
	InstanceDefinition(ctx context.Context, instanceID string) (*graph.Definition, error)
	GetInstance(ctx context.Context, instanceID string) (*graph.Instance, error)
}

// Graph is what a run needs of the Graph client (*graph.Client has it).
type Graph interface {
	lifecycle.Graph
	UploadFile(ctx context.Context, t review.Target, id, name string, size int64, open func(ctx context.Context) (io.ReadCloser, error)) (*graph.Session, error)
	ListCustomDataResources(ctx context.Context, catalogID string) ([]graph.Resource, error)
}

// Metrics receives one call per run; may be nil.
type Metrics interface {
	Discovered(Summary)
}

// Runner is the discover function. Make one per container; each Run is
// one invocation.
type Runner struct {
	Reviews  Reviews
	Graph    Graph
	Standing *standing.Store
	Ledger   *ledger.Ledger
	// Bucket is the drop bucket, whose standing prefix is read.
	Bucket       string
	Policy       review.Policy
	UploadWindow time.Duration
	Profile      string
	CanList      bool
	// NeedsSource: the API profile's create body names the resource
	// (beta-2025), which the catalog's resource list gives.
	NeedsSource bool
	Log         *slog.Logger
	Metrics     Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Parallel bounds the pairs served at once (default 4).
	Parallel int
	// Margin is kept free before the invocation's deadline: no pair starts
	// within it (default 30s, at most a quarter of the time).
	Margin time.Duration
	// ClaimLease is how long a claim lasts without renewal (default
	// claim.DefaultLease).
	ClaimLease time.Duration
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Summary is what a run returns and logs.
type Summary struct {
	// Instances counts the instances in Initializing; Covered those whose
	// scope covers a catalog with standing data.
	Instances int `json:"instances"`
	Covered   int `json:"covered"`
	// Catalogs lists the covered catalogs whose resources were listed.
	Catalogs []string `json:"catalogs,omitempty"`
	Pairs    []Pair   `json:"pairs"`
	// NoData counts the pairs recorded no-data by this run (first seen).
	NoData int `json:"noData"`
	// Uploaded counts the files this run uploaded.
	Uploaded int            `json:"uploaded"`
	Errors   []PairFailure  `json:"errors"`
	Deferred []string       `json:"deferred,omitempty"`
	Missing  []string       `json:"missingPermissions,omitempty"`
	Counts   map[string]int `json:"statuses,omitempty"`
}

// Pair is the outcome of one (instance, resource) pair.
type Pair struct {
	ReviewInstanceID string              `json:"reviewInstanceId"`
	ResourceID       string              `json:"resourceId"`
	Status           ledger.ReviewStatus `json:"status"`
	SessionID        string              `json:"sessionId,omitempty"`
	Uploaded         int                 `json:"uploaded,omitempty"`
	// FirstNoData is set when this run wrote the pair's no-data record.
	FirstNoData bool   `json:"-"`
	Message     string `json:"message,omitempty"`
}

// PairFailure is a pair or a catalog the run could not serve; the next run
// tries again.
type PairFailure struct {
	Item  string `json:"item"`
	Error string `json:"error"`
}

// errPermission marks the run's error when Graph refused a read for want
// of a permission.
var errPermission = errors.New("a Graph permission is missing")

// Run is one discovery run. It returns an error when some pair or catalog
// could not be served (the schedule's retry and the next run try again),
// and always the summary.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	s := Summary{Pairs: []Pair{}, Errors: []PairFailure{}}
	run := &run{Runner: r, defs: map[string]*graph.Definition{}, instDefs: map[string]string{}, resources: map[string][]graph.Resource{}}
	list, err := r.Reviews.ListInstances(ctx, graph.InstanceInitializing, func(d *graph.Definition) bool {
		return len(d.CatalogIDs()) > 0
	})
	if err != nil {
		return s, r.failRun(&s, "listing the review instances in Initializing", err)
	}
	for i := range list.Definitions {
		d := list.Definitions[i]
		run.defs[strings.ToLower(d.ID)] = &d
	}
	s.Instances = len(list.Instances)
	if s.Instances == 0 {
		r.log().InfoContext(ctx, "discovery run: no review instance is Initializing")
		return s, nil
	}
	inv, err := r.Standing.List(ctx, r.Bucket)
	if err != nil {
		return s, fmt.Errorf("listing the standing data: %w", err)
	}
	run.inv = inv
	withData := map[string]bool{}
	for _, c := range inv.Catalogs() {
		withData[c] = true
	}
	var errs []error
	type item struct {
		inst    graph.Instance
		catalog string
	}
	var covered []item
	if len(withData) > 0 {
		for _, inst := range list.Instances {
			cats, err := run.catalogsOf(ctx, &inst)
			if err != nil {
				errs = append(errs, r.fail(&s, "instance "+inst.ID, err))
				continue
			}
			n := 0
			for _, c := range cats {
				if withData[c] {
					covered = append(covered, item{inst, c})
					n++
				}
			}
			if n > 0 {
				s.Covered++
			}
		}
	}
	if len(covered) == 0 {
		r.log().InfoContext(ctx, "discovery run: no review in Initializing covers a catalog with standing data", "instances", s.Instances)
		return s, errors.Join(errs...)
	}
	// Each covered catalog's resources, once per run.
	for _, it := range covered {
		if _, ok := run.resources[it.catalog]; ok {
			continue
		}
		if _, failed := run.failedCatalogs[it.catalog]; failed {
			continue
		}
		res, err := r.Graph.ListCustomDataResources(ctx, it.catalog)
		if err != nil {
			if run.failedCatalogs == nil {
				run.failedCatalogs = map[string]bool{}
			}
			run.failedCatalogs[it.catalog] = true
			errs = append(errs, r.fail(&s, "catalog "+it.catalog, fmt.Errorf("listing the catalog's custom data provided resources: %w", err)))
			continue
		}
		run.resources[it.catalog] = res
		s.Catalogs = append(s.Catalogs, it.catalog)
	}
	var pairs []pairWork
	for _, it := range covered {
		for _, res := range run.resources[it.catalog] {
			pairs = append(pairs, pairWork{inst: it.inst, catalog: it.catalog, resource: res})
		}
	}
	perrs := run.serveAll(ctx, &s, pairs)
	errs = append(errs, perrs...)
	s.Counts = map[string]int{}
	for _, p := range s.Pairs {
		s.Counts[string(p.Status)]++
	}
	r.log().InfoContext(ctx, "discovery run", "instances", s.Instances, "covered", s.Covered, "pairs", len(s.Pairs),
		"uploaded", s.Uploaded, "no_data", s.NoData, "errors", len(s.Errors), "deferred", len(s.Deferred))
	return s, errors.Join(errs...)
}

// failRun is the error of a run that could not start: a missing
// permission is named once.
func (r *Runner) failRun(s *Summary, what string, err error) error {
	if perm, ok := graph.MissingPermission(err); ok {
		s.Missing = append(s.Missing, perm)
		r.log().Error("discovery cannot run: the Graph app lacks a permission", "permission", perm, "error", err.Error())
		return fmt.Errorf("%s: %w: %s (%w)", what, errPermission, perm, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// fail records a failure of one item; a missing permission is logged once
// per run, whatever the number of items it stops.
func (r *Runner) fail(s *Summary, item string, err error) error {
	s.Errors = append(s.Errors, PairFailure{Item: item, Error: err.Error()})
	if perm, ok := graph.MissingPermission(err); ok {
		if !slices.Contains(s.Missing, perm) {
			s.Missing = append(s.Missing, perm)
			r.log().Error("discovery: the Graph app lacks a permission", "permission", perm, "error", err.Error())
		}
		return fmt.Errorf("%s: %w: %s (%w)", item, errPermission, perm, err)
	}
	r.log().Warn("discovery: could not serve", "item", item, "error", err.Error())
	return fmt.Errorf("%s: %w", item, err)
}

// run is one run's caches.
type run struct {
	*Runner
	inv *standing.Inventory
	mu  sync.Mutex
	// defs by definition id; instDefs maps instance id to definition id.
	defs           map[string]*graph.Definition
	instDefs       map[string]string
	resources      map[string][]graph.Resource
	failedCatalogs map[string]bool
}

// catalogsOf returns the catalogs an instance's review covers: from the
// instance's own scope when the listing carries one, else from its
// definition (read once per run).
func (r *run) catalogsOf(ctx context.Context, inst *graph.Instance) ([]string, error) {
	if inst.Scope.ODataType != "" || len(inst.Scope.ResourceScopes) > 0 {
		return inst.Scope.CatalogIDs(), nil
	}
	d, err := r.definitionOf(ctx, inst)
	if err != nil {
		return nil, err
	}
	return d.CatalogIDs(), nil
}

// definitionOf returns an instance's definition, read at most once per
// run: by its id when the listing gave it, else through the instance.
func (r *run) definitionOf(ctx context.Context, inst *graph.Instance) (*graph.Definition, error) {
	r.mu.Lock()
	id := strings.ToLower(inst.DefinitionID)
	if id == "" {
		id = r.instDefs[strings.ToLower(inst.ID)]
	}
	d := r.defs[id]
	r.mu.Unlock()
	if d != nil {
		return d, nil
	}
	var err error
	if id != "" {
		d, err = r.Reviews.GetDefinition(ctx, id)
	} else {
		d, err = r.Reviews.InstanceDefinition(ctx, inst.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the review definition: %w", err)
	}
	if !review.IsGUID(d.ID) {
		return nil, review.Errorf(review.Internal, "graph: review definition id is not a GUID: %q", d.ID)
	}
	r.mu.Lock()
	r.defs[strings.ToLower(d.ID)] = d
	r.instDefs[strings.ToLower(inst.ID)] = strings.ToLower(d.ID)
	r.mu.Unlock()
	return d, nil
}

// stopAt is when the run stops starting pairs.
func (r *Runner) stopAt(ctx context.Context) time.Time {
	return deadline.Margin{Fixed: r.Margin, Default: 30 * time.Second, Share: 4}.StopAt(ctx, r.now())
}

func (r *Runner) parallel() int {
	if r.Parallel > 0 {
		return r.Parallel
	}
	return 4
}

// serveAll serves the pairs, a few at a time, none started past stopAt.
func (r *run) serveAll(ctx context.Context, s *Summary, pairs []pairWork) []error {
	var (
		mu   sync.Mutex
		errs []error
	)
	left := deadline.Run(ctx, pairs, r.parallel(), r.stopAt(ctx), r.now, func(p pairWork) {
		out, err := r.serve(ctx, p)
		mu.Lock()
		defer mu.Unlock()
		s.Pairs = append(s.Pairs, out)
		s.Uploaded += out.Uploaded
		if out.FirstNoData {
			s.NoData++
		}
		if err != nil {
			errs = append(errs, r.fail(s, p.name(), err))
		}
	})
	for _, p := range left {
		s.Deferred = append(s.Deferred, p.name())
	}
	if len(s.Deferred) > 0 {
		r.log().Warn("discovery run reached its deadline; pairs left for the next run", "deferred", len(s.Deferred))
	}
	slices.SortFunc(s.Pairs, func(a, b Pair) int {
		return strings.Compare(a.ReviewInstanceID+"/"+a.ResourceID, b.ReviewInstanceID+"/"+b.ResourceID)
	})
	return errs
}
