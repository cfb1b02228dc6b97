package graph_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

const (
	revCatalog  = "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	revCatalog2 = "5f0e7b1d-2a3c-4d4e-9f8a-9b0c1d2e3f4a"
	revResource = "7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c"
)

// reviewsEmu is an emulator with two catalog reviews (one Initializing,
// one not started) and a group review, and the client's Reviews.
func reviewsEmu(t *testing.T, profile, version string) (*emuEnv, *graph.Reviews, map[string]string) {
	t.Helper()
	e := startEmu(t, profile)
	now := e.s.Now()
	ids := map[string]string{}
	ids["catalogDef"] = e.s.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Catalog review", CatalogIDs: []string{revCatalog}})
	ids["otherDef"] = e.s.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Later review", CatalogIDs: []string{revCatalog2}})
	ids["groupDef"] = e.s.AddDefinition(graphemu.ReviewDefinition{DisplayName: "Group review",
		Scope: json.RawMessage(`{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups/x/members","queryType":"MicrosoftGraph"}`)})
	ids["initializing"] = e.s.AddInstance(graphemu.ReviewInstance{DefinitionID: ids["catalogDef"], Start: now.Add(-time.Minute)})
	ids["notStarted"] = e.s.AddInstance(graphemu.ReviewInstance{DefinitionID: ids["otherDef"], Start: now.Add(time.Hour)})
	ids["group"] = e.s.AddInstance(graphemu.ReviewInstance{DefinitionID: ids["groupDef"], Start: now.Add(-time.Minute)})
	r, err := e.c.Reviews(version)
	if err != nil {
		t.Fatal(err)
	}
	return e, r, ids
}

func instanceIDs(l *graph.InstanceList) []string {
	var out []string
	for _, i := range l.Instances {
		out = append(out, i.ID)
	}
	slices.Sort(out)
	return out
}

func TestListInstancesInitializing(t *testing.T) {
	for _, version := range []string{"beta", "v1.0"} {
		t.Run(version, func(t *testing.T) {
			e, r, ids := reviewsEmu(t, "v1.0", version)
			l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{ids["initializing"], ids["group"]}
			slices.Sort(want)
			if got := instanceIDs(l); !slices.Equal(got, want) || l.Fallback {
				t.Fatalf("instances %v (fallback %v), want %v", got, l.Fallback, want)
			}
			if n := e.s.Count(graphemu.OpListInstances, http.StatusOK); n != 1 {
				t.Errorf("%d list requests, want 1", n)
			}
			for _, j := range e.s.Journal() {
				if !strings.HasPrefix(j.Path, "/"+version+"/") {
					t.Errorf("request on %s, want version %s", j.Path, version)
				}
			}
		})
	}
}

func TestListInstancesFollowsNextLink(t *testing.T) {
	s, err := graphemu.Start(graphemu.Options{MaxPageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := clientFor(t, s)
	d := s.AddDefinition(graphemu.ReviewDefinition{CatalogIDs: []string{revCatalog}})
	for range 5 {
		s.AddInstance(graphemu.ReviewInstance{DefinitionID: d, Start: s.Now()})
	}
	r, _ := c.Reviews("beta")
	l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Instances) != 5 || s.Count(graphemu.OpListInstances, 0) != 3 {
		t.Errorf("%d instances in %d requests, want 5 in 3", len(l.Instances), s.Count(graphemu.OpListInstances, 0))
	}
}

func clientFor(t *testing.T, s *graphemu.Server) *graph.Client {
	t.Helper()
	p, _ := graph.ProfileByName("beta")
	c, err := graph.New(graph.Config{Endpoint: s.URL(), Profile: p, Tokens: &emuTokens{s: s}, HTTPClient: s.Client(),
		Retry: graph.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListInstancesFallsBackWhenTheFlatCollectionIsRefused(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusNotImplemented} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e, r, ids := reviewsEmu(t, "beta", "beta")
			e.s.SetReviewsModes(graphemu.ReviewsModes{FlatInstances: status})
			l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{ids["initializing"], ids["group"]}
			slices.Sort(want)
			if got := instanceIDs(l); !slices.Equal(got, want) || !l.Fallback || len(l.Definitions) != 3 {
				t.Fatalf("instances %v fallback %v definitions %d; want %v by fallback with 3 definitions", got, l.Fallback, len(l.Definitions), want)
			}
			for _, i := range l.Instances {
				if i.ID == ids["initializing"] && i.DefinitionID != ids["catalogDef"] {
					t.Errorf("instance %s: definition %q, want %s", i.ID, i.DefinitionID, ids["catalogDef"])
				}
			}
			var ge *graph.Error
			if !errors.As(l.Refusal, &ge) || ge.StatusCode != status {
				t.Errorf("refusal %v", l.Refusal)
			}
			// One refused flat list (not retried), one definitions list, one
			// list per definition.
			if a, b, c := e.s.Count(graphemu.OpListInstances, 0), e.s.Count(graphemu.OpListDefinitions, 0), e.s.Count(graphemu.OpListDefinitionInstances, 0); a != 1 || b != 1 || c != 3 {
				t.Errorf("requests: flat %d, definitions %d, per definition %d; want 1, 1, 3", a, b, c)
			}
		})
	}
}

func TestFallbackWalksOnlyTheDefinitionsAsked(t *testing.T) {
	e, r, ids := reviewsEmu(t, "beta", "beta")
	e.s.SetReviewsModes(graphemu.ReviewsModes{FlatInstances: http.StatusBadRequest})
	catalogs := func(d *graph.Definition) bool { return len(d.CatalogIDs()) > 0 }
	l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, catalogs)
	if err != nil {
		t.Fatal(err)
	}
	if got := instanceIDs(l); !slices.Equal(got, []string{ids["initializing"]}) {
		t.Errorf("instances %v, want only the catalog review's", got)
	}
	if n := e.s.Count(graphemu.OpListDefinitionInstances, 0); n != 2 {
		t.Errorf("%d per-definition lists, want 2 (the group review is skipped)", n)
	}
	d, err := r.GetDefinition(ctxT(t), ids["catalogDef"])
	if err != nil || d.DisplayName != "Catalog review" {
		t.Errorf("GetDefinition: %+v %v", d, err)
	}
}

func TestListInstancesDoesNotFallBackOnOtherErrors(t *testing.T) {
	tests := []struct {
		name   string
		fault  graphemu.Fault
		kind   review.Kind
		perm   bool
		counts int // flat list requests
	}{
		{"403 names the permission", graphemu.Fault{Op: graphemu.OpListInstances, Status: http.StatusForbidden, Times: -1}, review.Internal, true, 1},
		{"503 is retried, then stands", graphemu.Fault{Op: graphemu.OpListInstances, Status: http.StatusServiceUnavailable, Times: -1}, review.Transient, false, 4},
		{"reset is retried, then stands", graphemu.Fault{Op: graphemu.OpListInstances, DropResponse: true, Times: -1}, review.Transient, false, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, r, _ := reviewsEmu(t, "beta", "beta")
			e.s.Inject(tt.fault)
			_, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if review.KindOf(err) != tt.kind {
				t.Errorf("kind %v, want %v: %v", review.KindOf(err), tt.kind, err)
			}
			perm, ok := graph.MissingPermission(err)
			if ok != tt.perm || (ok && perm != graph.PermissionReviewsRead) || (ok && !strings.Contains(err.Error(), "AccessReview.Read.All")) {
				t.Errorf("permission %q %v: %v", perm, ok, err)
			}
			if n := e.s.Count(graphemu.OpListDefinitions, 0); n != 0 {
				t.Errorf("fell back (%d definition lists) on %v", n, err)
			}
			if n := e.s.Count(graphemu.OpListInstances, 0); n != tt.counts {
				t.Errorf("%d flat list requests, want %d", n, tt.counts)
			}
		})
	}
}

func TestListInstancesRetriesThrottling(t *testing.T) {
	e, r, _ := reviewsEmu(t, "beta", "beta")
	e.s.Inject(graphemu.Fault{Op: graphemu.OpListInstances, Status: http.StatusTooManyRequests, RetryAfter: "0", Times: 2})
	l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
	if err != nil || len(l.Instances) != 2 {
		t.Fatalf("%v %v", l, err)
	}
	if n := e.s.Count(graphemu.OpListInstances, 0); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestFallbackPermissionErrorOnDefinitions(t *testing.T) {
	e, r, _ := reviewsEmu(t, "beta", "beta")
	e.s.SetReviewsModes(graphemu.ReviewsModes{FlatInstances: http.StatusBadRequest})
	e.s.Inject(graphemu.Fault{Op: graphemu.OpListDefinitions, Status: http.StatusForbidden})
	_, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
	if p, ok := graph.MissingPermission(err); !ok || p != graph.PermissionReviewsRead {
		t.Errorf("error %v, want a missing AccessReview.Read.All", err)
	}
}

func TestLowerCaseStatusesAreNormalised(t *testing.T) {
	e, r, ids := reviewsEmu(t, "beta", "beta")
	e.s.SetReviewsModes(graphemu.ReviewsModes{LowerCaseStatuses: true})
	l, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
	if err != nil || len(l.Instances) != 2 {
		t.Fatalf("%v %v", l, err)
	}
	i, err := r.GetInstance(ctxT(t), ids["notStarted"])
	if err != nil || i.Status != graph.InstanceNotStarted || i.IsInitializing() {
		t.Fatalf("%+v %v", i, err)
	}
}

func TestGetInstanceAndDefinition(t *testing.T) {
	e, r, ids := reviewsEmu(t, "beta", "beta")
	ctx := ctxT(t)
	i, err := r.GetInstance(ctx, ids["initializing"])
	if err != nil {
		t.Fatal(err)
	}
	if !i.IsInitializing() || i.StartDateTime.IsZero() || !slices.Equal(i.Scope.CatalogIDs(), []string{revCatalog}) {
		t.Errorf("instance %+v", i)
	}
	d, err := r.InstanceDefinition(ctx, ids["initializing"])
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != ids["catalogDef"] || d.DisplayName != "Catalog review" || !slices.Equal(d.CatalogIDs(), []string{revCatalog}) {
		t.Errorf("definition %+v", d)
	}
	g, err := r.InstanceDefinition(ctx, ids["group"])
	if err != nil || len(g.CatalogIDs()) != 0 {
		t.Errorf("group review: %+v %v, want no catalog", g, err)
	}
	// The window moves the instance on.
	e.s.Advance(2 * time.Hour)
	i, err = r.GetInstance(ctx, ids["initializing"])
	if err != nil || i.Status != graph.InstanceInProgress {
		t.Errorf("after the window: %+v %v", i, err)
	}
	_, err = r.GetInstance(ctx, "0f0f0f0f-0000-4000-8000-000000000000")
	if review.KindOf(err) != review.NotFound {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := r.GetInstance(ctx, "../x"); review.KindOf(err) != review.Invalid {
		t.Errorf("bad id: %v", err)
	}
	e.s.Inject(graphemu.Fault{Op: graphemu.OpGetInstance, Status: http.StatusForbidden})
	if _, err := r.GetInstance(ctx, ids["group"]); err == nil || !strings.Contains(err.Error(), "AccessReview.Read.All") {
		t.Errorf("403: %v", err)
	}
}

func TestListCustomDataResources(t *testing.T) {
	for _, profile := range []string{"v1.0", "beta", "beta-2025"} {
		t.Run(profile, func(t *testing.T) {
			e := startEmu(t, profile)
			e.s.AddResource(revCatalog, graphemu.CatalogResource{ID: revResource, DisplayName: "Door badges"})
			e.s.AddResource(revCatalog, graphemu.CatalogResource{DisplayName: "Sales", OriginSystem: "AadGroup"})
			e.s.AddResource(revCatalog2, graphemu.CatalogResource{DisplayName: "Elsewhere"})
			got, err := e.c.ListCustomDataResources(ctxT(t), strings.ToUpper(revCatalog))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != revResource || got[0].DisplayName != "Door badges" || !got[0].IsCustomData() {
				t.Fatalf("resources %+v", got)
			}
			j := e.s.Journal()
			if len(j) != 1 || !strings.Contains(j[0].Query, "originSystem") {
				t.Errorf("journal %+v", j)
			}
			e.s.Inject(graphemu.Fault{Op: graphemu.OpListResources, Status: http.StatusForbidden})
			_, err = e.c.ListCustomDataResources(ctxT(t), revCatalog)
			if p, ok := graph.MissingPermission(err); !ok || p != graph.PermissionCatalogRead || !strings.Contains(err.Error(), "EntitlementManagement.Read.All") {
				t.Errorf("403: %v", err)
			}
		})
	}
}

// TestWindowOverRefusalUnderEachMode pins what a caller sees when it
// creates or uploads for an instance past Initializing, whichever refusal
// Graph uses: the refusal is not retried, and the instance's status (the
// caller's next read) says why.
func TestWindowOverRefusalUnderEachMode(t *testing.T) {
	for _, mode := range []struct {
		status int
		kind   review.Kind
	}{{http.StatusBadRequest, review.Invalid}, {http.StatusForbidden, review.Internal}, {http.StatusConflict, review.Conflict}} {
		t.Run(http.StatusText(mode.status), func(t *testing.T) {
			e, r, ids := reviewsEmu(t, "v1.0", "beta")
			e.s.SetReviewsModes(graphemu.ReviewsModes{LateRefusal: mode.status})
			tg := newTarget(ids["initializing"])
			tg.ReviewDefinitionID = ids["catalogDef"]
			ctx := ctxT(t)
			s, err := e.c.Create(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			// The review moves on while the session is still active.
			e.s.SetInstanceStatus(tg.ReviewInstanceID, graphemu.InstanceInProgress)
			data := csvOf(3)
			_, err = e.c.UploadFile(ctx, tg, s.ID, "a.csv", int64(len(data)), opener(data))
			var ge *graph.Error
			if !errors.As(err, &ge) || ge.StatusCode != mode.status || review.KindOf(err) != mode.kind {
				t.Fatalf("upload: %v (kind %v), want %d (%v)", err, review.KindOf(err), mode.status, mode.kind)
			}
			if n := e.s.Count("upload", 0); n != 1 {
				t.Errorf("%d upload requests, want 1 (a refusal is not retried)", n)
			}
			tg2 := tg
			tg2.ResourceID = revCatalog2 // another resource of the same instance
			if _, err := e.c.Create(ctx, tg2); !errors.As(err, &ge) || ge.StatusCode != mode.status {
				t.Errorf("create: %v", err)
			}
			i, err := r.GetInstance(ctx, tg.ReviewInstanceID)
			if err != nil || i.IsInitializing() || i.Status != graph.InstanceInProgress {
				t.Errorf("instance after the refusal: %+v %v", i, err)
			}
		})
	}
}

func TestReviewsOnAVersionWithoutTheRoute(t *testing.T) {
	e, r, _ := reviewsEmu(t, "v1.0", "v1.0")
	e.s.SetReviewsModes(graphemu.ReviewsModes{NoV1Reviews: true})
	_, err := r.ListInstances(ctxT(t), graph.InstanceInitializing, nil)
	if err == nil || !strings.Contains(err.Error(), "try REVIEWS_API=beta") || review.KindOf(err) != review.Invalid {
		t.Errorf("error %v (kind %v), want an invalid one suggesting REVIEWS_API=beta", err, review.KindOf(err))
	}
}

func TestReviewsVersionIsChecked(t *testing.T) {
	e := startEmu(t, "v1.0")
	if _, err := e.c.Reviews("beta-2025"); err == nil || !strings.Contains(err.Error(), "REVIEWS_API") {
		t.Errorf("error %v", err)
	}
}
