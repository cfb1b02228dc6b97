package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCounterNamesWhatEachRequestIsAbout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	c := &Counter{Base: http.DefaultTransport, Classify: classifyS3}
	hc := &http.Client{Transport: c}
	for _, key := range []string{
		"incoming/cat/res/def/inst/a.csv",
		statePrefix + "claims/0123.json",
		statePrefix + "claims/4567.json",
		statePrefix + "sessions/x.json",
		statePrefix + "reports/incoming/a.csv.json",
		"elsewhere/x",
	} {
		resp, err := hc.Get(srv.URL + "/" + stateBucket + "/" + key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := c.Counts()
	want := map[string]int{
		"GET (no operation) (the object)": 1, "GET (no operation) (claim)": 2, "GET (no operation) (session record)": 1,
		"GET (no operation) (report)": 1, "GET (no operation)": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for op, n := range want {
		if got[op] != n {
			t.Errorf("%s: %d, want %d (all: %v)", op, got[op], n, got)
		}
	}
}
