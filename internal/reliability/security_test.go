package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// hostileIDs are ids that would change a Graph URL's meaning if they were
// put in its path.
var hostileIDs = []string{"../x", "..%2fx", "%2e%2e", "%2E%2E%2F", "x?y=1", "x#y", "x;y", "..", ".", " " + harness.Instance, harness.Instance + "/..", "..\\x"}

// TestNoPathInjection: ids that are not GUIDs never reach a URL, whether
// they come from a dropped key or from the ledger, and the Graph client
// refuses them before any request.
func TestNoPathInjection(t *testing.T) {
	t.Parallel()
	t.Run("from dropped keys", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Options: harness.Options{Routes: routes}})
		for i, id := range hostileIDs {
			for pos := range 4 {
				segs := []string{cat, res, def, inst}
				segs[pos] = id
				raw := "incoming/" + strings.Join(segs, "/") + fmt.Sprintf("/f%d.csv", i)
				rec := harness.Record(r.Drop, raw, 10, "0123456789abcdef0123456789abcdef", "")
				if err := r.ingest(context.Background(), rec); err != nil {
					t.Fatalf("%q: %v", raw, err)
				}
				if rep := r.report(raw); rep.Status != review.Rejected {
					t.Errorf("%q: report %+v, want rejected", raw, rep)
				}
			}
		}
		checkNoHostilePath(t, r)
		if n := len(r.Emu.Journal()); n != 0 {
			t.Errorf("%d requests reached Graph or Entra for refused keys", n)
		}
	})
	t.Run("client refuses non-GUID review ids", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{})
		sid := "23f27c15-72f9-45fe-9e9c-e3d8f75bdc44"
		for _, id := range hostileIDs {
			for _, field := range []string{"catalog", "resource", "instance"} {
				tg := harness.Target()
				switch field {
				case "catalog":
					tg.CatalogID = id
				case "resource":
					tg.ResourceID = id
				default:
					tg.ReviewInstanceID = id
				}
				calls := clientCalls(r.graph, tg, sid)
				if field == "instance" {
					// Only create and list put the instance id anywhere
					// (the body, the $filter); the others do not use it.
					calls = map[string]func() error{"create": calls["create"], "list": calls["list"]}
				}
				for name, call := range calls {
					if err := call(); review.KindOf(err) != review.Invalid {
						t.Errorf("%s with %s id %q: %v, want an Invalid refusal", name, field, id, err)
					}
				}
			}
		}
		checkNoHostilePath(t, r)
		if n := len(r.hooks.paths); n != 0 {
			t.Errorf("%d requests were sent for refused ids", n)
		}
	})
	t.Run("client refuses non-GUID session ids", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{})
		for _, id := range hostileIDs {
			for name, call := range clientCalls(r.graph, harness.Target(), id) {
				if name == "create" || name == "list" {
					continue
				}
				if err := call(); review.KindOf(err) != review.Invalid {
					t.Errorf("%s with session id %q: %v, want an Invalid refusal before any request", name, id, err)
				}
			}
		}
		checkNoHostilePath(t, r)
	})
	t.Run("tampered ledger session id", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{})
		ctx := context.Background()
		// The state bucket is the function's own, but a wrong hand or a
		// bug could still write a bad id there; it must stop at the client.
		if _, err := r.Ledger.UpdateSession(ctx, harness.Target(), func(s *ledger.Session, _ bool) error {
			s.SessionID, s.State, s.Profile = "../../x", ledger.Open, "v1.0"
			s.CreatedAt, s.WindowEnds = time.Now().UTC(), time.Now().Add(2*time.Hour).UTC()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		key := harness.Key("a.csv")
		err := r.ingest(ctx, r.Put(key, csvRows(2, 1)))
		t.Logf("ingest with a tampered session id: %v; report %s", err, r.report(key).Status)
		if len(r.files()) != 0 {
			t.Errorf("a file was uploaded somewhere: %+v", r.files())
		}
		checkNoHostilePath(t, r)
	})
}

// clientCalls returns every Graph client method, bound to t and session id.
func clientCalls(c *graph.Client, t review.Target, id string) map[string]func() error {
	ctx := context.Background()
	open := harness.Opener([]byte("x"))
	return map[string]func() error{
		"create": func() error { _, err := c.Create(ctx, t); return err },
		"list":   func() error { _, err := c.List(ctx, t, graph.Filter{ReferenceID: t.ReviewInstanceID}); return err },
		"get":    func() error { _, err := c.Get(ctx, t, id); return err },
		"patch":  func() error { _, err := c.MarkDone(ctx, t, id); return err },
		"delete": func() error { return c.Delete(ctx, t, id) },
		"upload": func() error { _, err := c.UploadFile(ctx, t, id, "a.csv", 1, open); return err },
	}
}

// checkNoHostilePath: no request the rig sent, and none the emulator saw,
// has a hostile id in its path or query, raw or decoded.
func checkNoHostilePath(t *testing.T, r *rig) {
	t.Helper()
	var seen []string
	r.hooks.mu.Lock()
	seen = append(seen, r.hooks.paths...)
	r.hooks.mu.Unlock()
	for _, j := range r.Emu.Journal() {
		seen = append(seen, j.Path, j.Query)
	}
	for _, p := range seen {
		dec, _ := url.PathUnescape(p)
		for _, s := range []string{p, dec} {
			if strings.Contains(s, "..") || strings.Contains(s, "/./") || strings.Contains(strings.ToLower(s), "%2e") || strings.Contains(s, "\\") {
				t.Errorf("a request path carries a hostile id: %q", p)
			}
		}
	}
}

// TestSecretsNeverLeak runs ingest and finalize with a distinctive client
// secret, through token expiry, faults and failures, and scans every
// output (the handlers' logs, every document in the state bucket, every
// error returned, the emulator's journal) for the secret and for every
// access token the emulator issued.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	def := graphemu.DefaultOptions()
	const secret = "canary-S3cr3t~value+/=&7f3a9c1e"
	r := newRig(t, rigOptions{Options: harness.Options{Emulator: graphemu.Options{
		TenantID: def.TenantID, ClientID: def.ClientID, ClientSecret: secret,
	}}})
	ctx := context.Background()
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	// The settings as an operator would log them.
	r.Log.Info("settings", "settings", r.Settings)
	note(errors.New(fmt.Sprint(r.Settings)))
	note(fmt.Errorf("%#v", r.Settings))

	// A good file, a bad one, a manifest closing the session.
	note(r.ingest(ctx, r.Put(harness.Key("manifest.json"), []byte(`{"files":["a.csv","b.csv"]}`))))
	note(r.ingest(ctx, r.Put(harness.Key("a.csv"), csvRows(3, 1))))
	note(r.ingest(ctx, r.Put(harness.Key("bad.csv"), []byte(header+"bob,EntraIdUser,p,P,d,t,s,S,,,\r\n"))))
	// Expired tokens and a transient fault force refreshes and retries.
	r.Emu.ExpireTokens()
	r.Emu.Inject(graphemu.Fault{Op: "upload", Status: 503})
	note(r.ingest(ctx, r.Put(harness.Key("b.csv"), csvRows(2, 2))))
	// A second review left to the finalizer.
	other := harness.Target()
	other.ReviewInstanceID = "99999999-8888-4777-8666-000000000001"
	note(r.ingest(ctx, r.Put(harness.KeyFor(other, "c.csv"), csvRows(2, 3))))
	// The token endpoint refuses for a while: the failure is logged and
	// reported.
	r.Emu.ExpireTokens()
	r.Emu.Inject(graphemu.Fault{Op: "token", Status: 401, Times: -1})
	third := harness.Target()
	third.ReviewInstanceID = "99999999-8888-4777-8666-000000000002"
	failedKey := harness.KeyFor(third, "d.csv")
	dRec := r.Put(failedKey, csvRows(2, 4))
	err := r.ingest(ctx, dRec)
	if err == nil {
		t.Fatal("the token endpoint refused every request, yet ingest succeeded")
	}
	note(err)
	r.Emu.ClearFaults()
	note(r.ingest(ctx, dRec))
	_, err = r.finalizeLater(ctx)
	note(err)
	if rep := r.report(failedKey); rep.Status != review.Uploaded {
		t.Errorf("report of %s = %s, want uploaded after the retry", failedKey, rep.Status)
	}

	// Everything that came out.
	outputs := map[string]string{"handler logs": r.logs.String(), "returned errors": strings.Join(errs, "\n")}
	for _, key := range listKeys(t, r, r.State) {
		out, err := r.S3Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.State, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(out.Body)
		out.Body.Close()
		outputs["state s3://"+r.State+"/"+key] = string(data)
	}
	var journal strings.Builder
	for _, j := range r.Emu.Journal() {
		fmt.Fprintf(&journal, "%+v\n", j)
	}
	outputs["emulator journal"] = journal.String()

	tokens := r.hooks.tokensSeen()
	if len(tokens) < 2 {
		t.Fatalf("only %d access tokens were used; the run should have refreshed", len(tokens))
	}
	needles := map[string]string{"the client secret": secret, "the URL-encoded client secret": url.QueryEscape(secret)}
	for i, tok := range tokens {
		needles[fmt.Sprintf("access token %d", i+1)] = tok
		// A token's signature alone identifies it.
		needles[fmt.Sprintf("the signature of access token %d", i+1)] = tok[strings.LastIndexByte(tok, '.')+1:]
	}
	// Any JWT at all: the emulator's tokens, like Entra's, start with a
	// base64url JSON header.
	needles["a JWT header"] = "eyJ"
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	slices.Sort(names)
	bytes := 0
	for _, where := range names {
		text := outputs[where]
		bytes += len(text)
		for what, needle := range needles {
			if strings.Contains(text, needle) {
				t.Errorf("%s appears in %s", what, where)
			}
		}
	}
	if !strings.Contains(outputs["handler logs"], "object handled") || len(outputs) < 8 {
		t.Fatalf("the scan saw too little: %d outputs", len(outputs))
	}
	t.Logf("scanned %d outputs (%d bytes) for the secret and %d access tokens", len(outputs), bytes, len(tokens))
}

func listKeys(t *testing.T, r *rig, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(r.S3Client, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// TestPlainHTTPEndpointsRefused: the Graph endpoint and the authority take
// plain http only to a loopback address, in the settings and in the client.
func TestPlainHTTPEndpointsRefused(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"AZURE_TENANT_ID":     "0e0e0e0e-0000-4000-8000-00000000aaaa",
		"AZURE_CLIENT_ID":     "0c0c0c0c-0000-4000-8000-00000000bbbb",
		"AZURE_CLIENT_SECRET": "s",
		"STATE_BUCKET":        "state",
	}
	tests := []struct {
		setting, value string
		ok             bool
	}{
		{"GRAPH_ENDPOINT", "http://graph.example.com", false},
		{"GRAPH_ENDPOINT", "http://graph.microsoft.com", false},
		{"GRAPH_ENDPOINT", "http://10.0.0.1:8080", false},
		{"GRAPH_ENDPOINT", "http://0.0.0.0:8080", false},
		{"GRAPH_ENDPOINT", "http://127.1:8080", false},
		{"GRAPH_ENDPOINT", "http://2130706433", false},
		{"GRAPH_ENDPOINT", "http://localhost.example.com", false},
		{"GRAPH_ENDPOINT", "http://127.0.0.1.nip.io", false},
		{"GRAPH_ENDPOINT", "http://127.0.0.1@graph.example.com", false},
		{"GRAPH_ENDPOINT", "HTTP://GRAPH.EXAMPLE.COM", false},
		{"GRAPH_ENDPOINT", "ftp://graph.example.com", false},
		{"AZURE_AUTHORITY_HOST", "http://login.example.com/", false},
		{"AZURE_AUTHORITY_HOST", "http://login.microsoftonline.com/", false},
		{"GRAPH_ENDPOINT", "https://graph.example.com", true},
		{"GRAPH_ENDPOINT", "http://127.0.0.1:8080", true},
		{"GRAPH_ENDPOINT", "http://localhost:8080", true},
		{"GRAPH_ENDPOINT", "http://[::1]:8080", true},
		{"AZURE_AUTHORITY_HOST", "https://login.example.com/", true},
	}
	for _, tt := range tests {
		t.Run(tt.setting+"="+tt.value, func(t *testing.T) {
			env := map[string]string{tt.setting: tt.value}
			for k, v := range base {
				env[k] = v
			}
			_, err := config.FromEnv(func(k string) string { return env[k] })
			switch {
			case tt.ok && err != nil:
				t.Errorf("refused: %v", err)
			case !tt.ok && err == nil:
				t.Errorf("accepted")
			case !tt.ok && !strings.Contains(err.Error(), tt.setting):
				t.Errorf("the error does not name %s: %v", tt.setting, err)
			}
			if tt.setting != "GRAPH_ENDPOINT" {
				return
			}
			p, _ := graph.ProfileByName("v1.0")
			_, err = graph.New(graph.Config{Endpoint: tt.value, Profile: p, Tokens: staticTokens{}})
			if tt.ok != (err == nil) {
				t.Errorf("graph.New: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

type staticTokens struct{}

func (staticTokens) Token(context.Context, bool) (string, error) { return "t", nil }

// The template's IAM statements are checked for least privilege in
// internal/deploytest (TestTemplatePoliciesAreLeastPrivilege): no wildcard
// action, no '*' resource for S3 or Secrets Manager actions, object actions
// only on incoming/* (read-only) and state/*, ListBucket only with a
// prefix condition, the secret only by its ARN and under its condition.
