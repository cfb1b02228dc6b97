package graph

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The review and resource lists follow @odata.nextLink under the same
// rules as the session list: never off the endpoint, never in a loop, and
// such a failure is not a refusal that the definitions walk could answer.
func TestReviewListsRefuseForeignAndRepeatedNextLinks(t *testing.T) {
	var other sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Store("hit", r.Header.Get("Authorization"))
		writeJSON(w, 200, `{"value":[]}`)
	}))
	defer elsewhere.Close()
	for name, tc := range map[string]struct {
		link func(self string) string
		want string
	}{
		"other host": {func(string) string { return elsewhere.URL + "/beta/next" }, "not followed"},
		"loop":       {func(self string) string { return self + "/beta/loop" }, "repeats"},
	} {
		for _, call := range []string{OpListInstances, OpListResources} {
			t.Run(name+"/"+call, func(t *testing.T) {
				var self string
				e := newEnv(t, "beta", true, func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, 200, fmt.Sprintf(`{"value":[{"id":"x","status":"Initializing","originSystem":"CustomDataProvidedResource"}],"@odata.nextLink":%q}`, tc.link(self)))
				})
				self = e.srv.URL
				var err error
				if call == OpListInstances {
					r, _ := e.c.Reviews("beta")
					_, err = r.ListInstances(context.Background(), InstanceInitializing, nil)
				} else {
					_, err = e.c.ListCustomDataResources(context.Background(), testTarget.CatalogID)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), call) {
					t.Fatalf("error %v, want one of %s saying %q", err, call, tc.want)
				}
				for _, r := range e.requests() {
					if strings.Contains(r.Path, "definitions") {
						t.Errorf("fell back to %s", r.Path)
					}
				}
			})
		}
	}
	if v, hit := other.Load("hit"); hit {
		t.Fatalf("the other host got a request (Authorization %q)", v)
	}
}

func TestReviewRequestsAreWhatTheContractSays(t *testing.T) {
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"value":[]}`)
	})
	r, _ := e.c.Reviews("beta")
	if _, err := r.ListInstances(context.Background(), InstanceInitializing, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.ListCustomDataResources(context.Background(), testTarget.CatalogID); err != nil {
		t.Fatal(err)
	}
	reqs := e.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if reqs[0].Path != "/beta/identityGovernance/accessReviews/unified/instances" || reqs[0].RawQuery != "$filter=status%20eq%20%27Initializing%27" {
		t.Errorf("instances request %s?%s", reqs[0].Path, reqs[0].RawQuery)
	}
	if reqs[1].Path != "/v1.0/identityGovernance/entitlementManagement/catalogs/"+testTarget.CatalogID+"/resources" ||
		reqs[1].Query["$filter"][0] != "originSystem eq 'CustomDataProvidedResource'" {
		t.Errorf("resources request %s?%s", reqs[1].Path, reqs[1].RawQuery)
	}
	for _, q := range reqs {
		if q.Method != http.MethodGet || q.Auth == "" {
			t.Errorf("request %+v", q)
		}
	}
	if _, err := r.ListInstances(context.Background(), "Initializing' or true", nil); err == nil {
		t.Error("a status that is not a word reached the query")
	}
}
