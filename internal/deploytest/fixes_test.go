package deploytest

import (
	"context"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
)

// iamGlob reports whether an IAM resource pattern (* and ?) matches arn.
func iamGlob(pattern, arn string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(arn)
}

// The secret statement matches the secret whether ClientSecretArn is given
// with Secrets Manager's random suffix or without it, and no other secret.
func TestTemplateSecretResourceMatchesTheRandomSuffix(t *testing.T) {
	tpl := loadTemplate(t)
	const secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-AbCdEf"
	for _, fn := range functions {
		var resources []any
		for _, s := range statements(t, tpl, fn) {
			if s.cond == "ReadsClientSecret" {
				resources = list(s.st["Resource"])
			}
		}
		if len(resources) == 0 {
			t.Fatalf("%s: no secret statement", fn)
		}
		matches := func(param, arn string) bool {
			for _, r := range resources {
				pattern := param
				if sub, ok := Get(r, "Fn::Sub"); ok {
					pattern = strings.ReplaceAll(str(sub), "${ClientSecretArn}", param)
				}
				if iamGlob(pattern, arn) {
					return true
				}
			}
			return false
		}
		for _, tc := range []struct {
			param, arn string
			want       bool
		}{
			{secret, secret, true},
			{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph", secret, true},
			{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-admin-AbCdEf", false},
			{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/other-AbCdEf", false},
		} {
			if got := matches(tc.param, tc.arn); got != tc.want {
				t.Errorf("%s: ClientSecretArn %s grants %s: %v, want %v", fn, tc.param, tc.arn, got, tc.want)
			}
		}
	}
}

// ReservedConcurrency 0 reserves nothing for either function (new accounts
// cannot reserve any); another value caps ingest and serializes finalize.
func TestTemplateReservedConcurrencyZeroReservesNothing(t *testing.T) {
	tpl := loadTemplate(t)
	p := mustGet(t, tpl, "Parameters", "ReservedConcurrency")
	if d, m := str(mustGet(t, p, "Default")), str(mustGet(t, p, "MinValue")); d != "0" || m != "0" {
		t.Errorf("ReservedConcurrency default %s min %s, want 0 and 0: the default deploy must work in a new account", d, m)
	}
	for _, tc := range []struct {
		value          string
		ingest, finale any // nil: unreserved
	}{
		{"0", nil, nil},
		{"10", ref("ReservedConcurrency"), "1"},
	} {
		params := map[string]string{"ReservedConcurrency": tc.value}
		for fn, want := range map[string]any{"IngestFunction": tc.ingest, "FinalizeFunction": tc.finale} {
			got := resolveIf(t, tpl, mustGet(t, tpl, "Resources", fn, "Properties", "ReservedConcurrentExecutions"), params)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReservedConcurrency %s: %s reserves %v, want %v", tc.value, fn, got, want)
			}
		}
	}
}

// resolveIf evaluates a top-level !If; AWS::NoValue becomes nil.
func resolveIf(t *testing.T, tpl map[string]any, v any, params map[string]string) any {
	t.Helper()
	if iff, ok := Get(v, "Fn::If"); ok {
		args := list(iff)
		v = args[2]
		if evalCondition(t, tpl, map[string]any{"Condition": args[0]}, params) {
			v = args[1]
		}
	}
	if reflect.DeepEqual(v, ref("AWS::NoValue")) {
		return nil
	}
	return v
}

// The state does not grow without bound: claims, and the records of ended
// sessions, expire after the failure queue's retention (a replay must still
// find them). Open sessions never expire. The rules follow STATE_PREFIX.
func TestTemplateLifecycleExpiresClaimsAndEndedSessions(t *testing.T) {
	tpl := loadTemplate(t)
	prefix := str(environment(t, tpl, "IngestFunction")["STATE_PREFIX"])
	if prefix == "" {
		t.Fatal("STATE_PREFIX is not a plain string in the template")
	}
	retention, err := strconv.Atoi(str(mustGet(t, tpl, "Resources", "FailureQueue", "Properties", "MessageRetentionPeriod")))
	if err != nil {
		t.Fatal(err)
	}
	queueDays := retention / 86400
	rules := list(mustGet(t, tpl, "Resources", "DropBucket", "Properties", "LifecycleConfiguration", "Rules"))
	find := func(p string) any {
		for _, r := range rules {
			if got, _ := Get(r, "Prefix"); str(got) == p && str(mustGet(t, r, "Status")) == "Enabled" {
				if _, ok := Get(r, "ExpirationInDays"); ok {
					return r
				}
			}
		}
		t.Fatalf("no enabled rule expiring %s", p)
		return nil
	}
	// The tag is the one the ledger writes on the record of an ended session.
	tag, err := url.ParseQuery(ledger.EndedTag)
	if err != nil || len(tag) != 1 {
		t.Fatalf("ledger.EndedTag %q is not one key=value", ledger.EndedTag)
	}
	var ended []any
	for k, v := range tag {
		ended = append(ended, map[string]any{"Key": k, "Value": v[0]})
	}
	for _, tc := range []struct {
		prefix string
		tags   []any
	}{
		{prefix + "claims/", nil},
		{prefix + "sessions/", ended},
	} {
		r := find(tc.prefix)
		days, _ := strconv.Atoi(str(mustGet(t, r, "ExpirationInDays")))
		if days <= queueDays {
			t.Errorf("%s expires after %d days: want longer than the failure queue's %d", tc.prefix, days, queueDays)
		}
		tags, _ := Get(r, "TagFilters")
		if !reflect.DeepEqual(list(tags), tc.tags) {
			t.Errorf("%s: tag filter %v, want %v", tc.prefix, tags, tc.tags)
		}
	}
	// Nothing else of the state expires by age, except reports.
	for _, r := range rules {
		p, _ := Get(r, "Prefix")
		if _, ok := Get(r, "ExpirationInDays"); ok && strings.HasPrefix(str(p), prefix) {
			switch strings.TrimPrefix(str(p), prefix) {
			case "claims/", "sessions/", "reports/":
			default:
				t.Errorf("rule %v expires %s", mustGet(t, r, "Id"), p)
			}
		}
	}
}

// What happens to a CSV whose extension is upper case, now that it
// triggers ingest: the real handler uploads it under its own name.
func TestUpperCaseCSVIsIngestedLikeAnyCSV(t *testing.T) {
	w := harness.New(t, harness.Options{})
	data, err := os.ReadFile(repoPath(t, "events/data/badge-access.csv"))
	if err != nil {
		t.Fatal(err)
	}
	key := harness.Key("EXPORT.CSV")
	if err := w.IngestRecords(context.Background(), w.Put(key, data)); err != nil {
		t.Fatal(err)
	}
	if r := w.Report(key); r.Status != review.Uploaded || r.Rows != 5 {
		t.Errorf("report %+v, want uploaded with 5 rows", r)
	}
	var names []string
	for _, s := range w.Emu.Sessions() {
		for _, f := range s.Files {
			names = append(names, f.Name)
		}
	}
	if !slices.Equal(names, []string{"EXPORT.CSV"}) {
		t.Errorf("Graph holds %v, want EXPORT.CSV", names)
	}
}
