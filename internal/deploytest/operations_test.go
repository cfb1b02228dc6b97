package deploytest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/metrics"
)

var update = flag.Bool("update", false, "rewrite template.yaml's DashboardBody from metrics.Dashboard (make dashboard)")

// resourcesOfType returns the logical ids of the template's resources of
// type typ, sorted.
func resourcesOfType(t *testing.T, tpl map[string]any, typ string) []string {
	t.Helper()
	var out []string
	for id, r := range mustGet(t, tpl, "Resources").(map[string]any) {
		if str(mustGet(t, r, "Type")) == typ {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// alarmMetric is one metric an alarm watches.
type alarmMetric struct {
	namespace, name, dimension string
	value                      any // the dimension's value: !Ref or !GetAtt
	stat                       string
}

// alarmMetrics returns what an alarm watches: its one metric, or the
// metrics of its metric-math expression.
func alarmMetrics(t *testing.T, alarm any) []alarmMetric {
	t.Helper()
	one := func(m any, stat any) alarmMetric {
		dims := list(mustGet(t, m, "Dimensions"))
		if len(dims) != 1 {
			t.Fatalf("metric %v: %d dimensions, want 1", m, len(dims))
		}
		return alarmMetric{
			namespace: str(mustGet(t, m, "Namespace")), name: str(mustGet(t, m, "MetricName")),
			dimension: str(mustGet(t, dims[0], "Name")), value: mustGet(t, dims[0], "Value"), stat: str(stat),
		}
	}
	props := mustGet(t, alarm, "Properties")
	if queries, ok := Get(props, "Metrics"); ok {
		var out []alarmMetric
		returned := 0
		for _, q := range list(queries) {
			if ms, ok := Get(q, "MetricStat"); ok {
				out = append(out, one(mustGet(t, ms, "Metric"), mustGet(t, ms, "Stat")))
			}
			if rd, _ := Get(q, "ReturnData"); str(rd) != "false" {
				returned++
			}
		}
		if returned != 1 {
			t.Errorf("metric-math alarm returns %d series, want 1", returned)
		}
		return out
	}
	return []alarmMetric{one(props, mustGet(t, props, "Statistic"))}
}

// The alarms of the list, by what they watch. Discovery's alarms
// are required as soon as the template has a DiscoverFunction.
func TestTemplateAlarmsWatchWhatTheCodeWrites(t *testing.T) {
	tpl := loadTemplate(t)
	type want struct {
		namespace, name string
		targets         []any // the dimension values, one per function or queue
		op, threshold   string
		missing         string
	}
	wants := map[string]want{
		"SessionsExpiredAlarm":         {"byodrop", "SessionsExpired", []any{ref("IngestFunction"), ref("FinalizeFunction")}, "GreaterThanThreshold", "0", "notBreaching"},
		"FilesFailedAlarm":             {"byodrop", "FilesFailed", []any{ref("IngestFunction")}, "GreaterThanThreshold", "0", "notBreaching"},
		"FailureQueueAlarm":            {"AWS/SQS", "ApproximateNumberOfMessagesVisible", []any{getAtt("FailureQueue", "QueueName")}, "GreaterThanThreshold", "0", "notBreaching"},
		"FinalizeDeadLetterQueueAlarm": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", []any{getAtt("FinalizeDeadLetterQueue", "QueueName")}, "GreaterThanThreshold", "0", "notBreaching"},
		"IngestErrorsAlarm":            {"AWS/Lambda", "Errors", []any{ref("IngestFunction")}, "GreaterThanThreshold", "0", "notBreaching"},
		"FinalizeErrorsAlarm":          {"AWS/Lambda", "Errors", []any{ref("FinalizeFunction")}, "GreaterThanThreshold", "0", "notBreaching"},
		"FinalizeNotRunningAlarm":      {"AWS/Lambda", "Invocations", []any{ref("FinalizeFunction")}, "LessThanThreshold", "1", "breaching"},
	}
	if _, ok := Get(tpl, "Resources", "DiscoverFunction"); ok {
		wants["ReviewsWithoutDataAlarm"] = want{"byodrop", "ReviewsWithoutData", []any{ref("DiscoverFunction")}, "GreaterThanThreshold", "0", "notBreaching"}
		wants["DiscoverNotRunningAlarm"] = want{"AWS/Lambda", "Invocations", []any{ref("DiscoverFunction")}, "LessThanThreshold", "1", "breaching"}
		wants["DiscoverErrorsAlarm"] = want{"AWS/Lambda", "Errors", []any{ref("DiscoverFunction")}, "GreaterThanThreshold", "0", "notBreaching"}
	}
	alarms := resourcesOfType(t, tpl, "AWS::CloudWatch::Alarm")
	wantIDs := slices.Sorted(func(yield func(string) bool) {
		for id := range wants {
			if !yield(id) {
				return
			}
		}
	})
	if !slices.Equal(alarms, wantIDs) {
		t.Errorf("alarms %v, want %v", alarms, wantIDs)
	}
	runbook, err := os.ReadFile(repoPath(t, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range alarms {
		t.Run(id, func(t *testing.T) {
			a := mustGet(t, tpl, "Resources", id)
			props := mustGet(t, a, "Properties")
			w := wants[id]
			var targets []any
			for _, m := range alarmMetrics(t, a) {
				if m.namespace != w.namespace || m.name != w.name {
					t.Errorf("watches %s/%s, want %s/%s", m.namespace, m.name, w.namespace, w.name)
				}
				targets = append(targets, m.value)
				switch m.namespace {
				case metrics.Namespace:
					// What the code writes: the metric, its one dimension,
					// and a function that writes it.
					if m.dimension != metrics.Dimension {
						t.Errorf("dimension %q, want %q (metrics.Dimension)", m.dimension, metrics.Dimension)
					}
					fn := str(mustGet(t, m.value, "Ref"))
					if !slices.ContainsFunc(metrics.Written[fn], func(x metrics.Metric) bool { return x.Name == m.name }) {
						t.Errorf("%s never writes %s (metrics.Written)", fn, m.name)
					}
					if m.stat != "Sum" {
						t.Errorf("statistic %s of a counter, want Sum", m.stat)
					}
				case "AWS/Lambda":
					if m.dimension != "FunctionName" {
						t.Errorf("dimension %q, want FunctionName", m.dimension)
					}
				case "AWS/SQS":
					if m.dimension != "QueueName" || m.stat != "Maximum" {
						t.Errorf("dimension %q statistic %s, want QueueName and Maximum", m.dimension, m.stat)
					}
				}
			}
			if !reflect.DeepEqual(targets, w.targets) {
				t.Errorf("watches %v, want %v", targets, w.targets)
			}
			// A byodrop metric is watched for every function that writes it.
			if w.namespace == metrics.Namespace {
				for _, fn := range metrics.Functions() {
					if slices.ContainsFunc(metrics.Written[fn], func(x metrics.Metric) bool { return x.Name == w.name }) &&
						!slices.ContainsFunc(targets, func(v any) bool { return reflect.DeepEqual(v, ref(fn)) }) {
						t.Errorf("%s also writes %s, and the alarm does not watch it", fn, w.name)
					}
				}
			}
			for k, v := range map[string]string{"ComparisonOperator": w.op, "Threshold": w.threshold, "TreatMissingData": w.missing} {
				if got := str(mustGet(t, props, k)); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"AlarmActions", "OKActions"} {
				if got := mustGet(t, props, k); !reflect.DeepEqual(got, []any{ref("AlarmTopic")}) {
					t.Errorf("%s = %v, want [!Ref AlarmTopic]", k, got)
				}
			}
			// The description says what happened and links its runbook
			// section, which exists.
			desc := str(mustGet(t, props, "AlarmDescription"))
			anchor := "docs/operations.md#" + strings.ToLower(id)
			if !strings.Contains(desc, anchor) || len(desc) > 1024 {
				t.Errorf("description %q: want the runbook link %s, at most 1024 characters", desc, anchor)
			}
			if !regexp.MustCompile(`(?m)^### ` + id + `\b`).Match(runbook) {
				t.Errorf("docs/operations.md has no runbook section \"### %s\"", id)
			}
		})
	}
}

func TestTemplateFinalizeNotRunningMeansFifteenMinutes(t *testing.T) {
	tpl := loadTemplate(t)
	props := mustGet(t, tpl, "Resources", "FinalizeNotRunningAlarm", "Properties")
	period, _ := strconv.Atoi(str(mustGet(t, props, "Period")))
	periods, _ := strconv.Atoi(str(mustGet(t, props, "EvaluationPeriods")))
	points, _ := strconv.Atoi(str(mustGet(t, props, "DatapointsToAlarm")))
	if period*periods != 15*60 || points != periods {
		t.Errorf("%d periods of %ds, %d to alarm: want 15 minutes without a run", periods, period, points)
	}
}

func TestTemplateAlarmTopicAndOptionalEmail(t *testing.T) {
	tpl := loadTemplate(t)
	if got := str(mustGet(t, tpl, "Resources", "AlarmTopic", "Type")); got != "AWS::SNS::Topic" {
		t.Fatalf("AlarmTopic is %s", got)
	}
	sub := mustGet(t, tpl, "Resources", "AlarmEmailSubscription")
	for k, want := range map[string]any{
		"Condition": "HasAlarmEmail", "Type": "AWS::SNS::Subscription",
	} {
		if got := mustGet(t, sub, k); got != want {
			t.Errorf("subscription %s = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]any{"TopicArn": ref("AlarmTopic"), "Protocol": "email", "Endpoint": ref("AlarmEmail")} {
		if got := mustGet(t, sub, "Properties", k); !reflect.DeepEqual(got, want) {
			t.Errorf("subscription %s = %v, want %v", k, got, want)
		}
	}
	if d := str(mustGet(t, tpl, "Parameters", "AlarmEmail", "Default")); d != "" {
		t.Errorf("AlarmEmail default %q: the subscription is optional", d)
	}
	for _, tc := range []struct {
		email string
		on    bool
	}{{"", false}, {"ops@example.com", true}} {
		if got := evalCondition(t, tpl, map[string]any{"Condition": "HasAlarmEmail"}, map[string]string{"AlarmEmail": tc.email}); got != tc.on {
			t.Errorf("AlarmEmail %q: subscription %v, want %v", tc.email, got, tc.on)
		}
	}
	if got := mustGet(t, tpl, "Outputs", "AlarmTopicArn", "Value"); !reflect.DeepEqual(got, ref("AlarmTopic")) {
		t.Errorf("output AlarmTopicArn = %v", got)
	}
}

// dashboardBody is the template's DashboardBody, as Fn::Sub gets it.
func dashboardBody(t *testing.T, tpl map[string]any) string {
	t.Helper()
	return str(mustGet(t, tpl, "Resources", "Dashboard", "Properties", "DashboardBody", "Fn::Sub"))
}

// The dashboard is metrics.Dashboard, so it shows what the functions write
// (internal/metrics checks that in both directions). `make dashboard`
// rewrites it.
func TestTemplateDashboardIsGenerated(t *testing.T) {
	file := repoPath(t, "template.yaml")
	if *update {
		if err := rewriteDashboard(file, metrics.Dashboard()); err != nil {
			t.Fatal(err)
		}
	}
	tpl := loadTemplate(t)
	if str(mustGet(t, tpl, "Resources", "Dashboard", "Type")) != "AWS::CloudWatch::Dashboard" {
		t.Fatal("Dashboard is not an AWS::CloudWatch::Dashboard")
	}
	got := dashboardBody(t, tpl)
	if got != metrics.Dashboard() {
		t.Fatalf("template.yaml's DashboardBody is not metrics.Dashboard(): run make dashboard")
	}
	// Every function and queue it names is in the template.
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.QueueName)?\}`).FindAllStringSubmatch(got, -1) {
		if _, ok := Get(tpl, "Resources", m[1]); !ok {
			t.Errorf("the dashboard names %s, which the template does not define", m[1])
		}
	}
	var v any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Errorf("dashboard body is not JSON: %v", err)
	}
}

// rewriteDashboard replaces the literal block after "DashboardBody: !Sub |"
// in file with body.
func rewriteDashboard(file, body string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "DashboardBody: !Sub |" })
	if start < 0 {
		return fmt.Errorf("%s: no \"DashboardBody: !Sub |\" line", file)
	}
	indent := len(lines[start]) - len(strings.TrimLeft(lines[start], " ")) + 2
	end := start + 1
	for end < len(lines) && (strings.TrimSpace(lines[end]) == "" && end+1 < len(lines) && strings.HasPrefix(lines[end+1], strings.Repeat(" ", indent)) ||
		strings.HasPrefix(lines[end], strings.Repeat(" ", indent))) {
		end++
	}
	var b strings.Builder
	for l := range strings.Lines(body) {
		b.WriteString(strings.Repeat(" ", indent) + l)
	}
	out := strings.Join(lines[:start+1], "") + b.String() + strings.Join(lines[end:], "")
	return os.WriteFile(file, []byte(out), 0o644)
}

func TestTemplateDashboardURLOutput(t *testing.T) {
	tpl := loadTemplate(t)
	got := str(mustGet(t, tpl, "Outputs", "DashboardUrl", "Value", "Fn::Sub"))
	if !strings.Contains(got, "#dashboards:name=${Dashboard}") {
		t.Errorf("DashboardUrl %q does not name the dashboard", got)
	}
}

// caseVariants returns every upper/lower-case spelling of s.
func caseVariants(s string) []string {
	out := []string{""}
	for _, r := range s {
		lo, up := strings.ToLower(string(r)), strings.ToUpper(string(r))
		var next []string
		for _, p := range out {
			next = append(next, p+lo)
			if up != lo {
				next = append(next, p+up)
			}
		}
		out = next
	}
	slices.Sort(out)
	return out
}

// S3's suffix filter is case-sensitive and ingest takes any case of .csv as
// a CSV: every spelling triggers ingest. manifest.json is only that.
func TestTemplateEveryCaseOfCSVTriggersIngest(t *testing.T) {
	tpl := loadTemplate(t)
	suffixes := map[string][]string{} // by prefix
	for _, ev := range mustGet(t, tpl, "Resources", "IngestFunction", "Properties", "Events").(map[string]any) {
		rules := map[string]string{}
		for _, r := range list(mustGet(t, ev, "Properties", "Filter", "S3Key", "Rules")) {
			rules[str(mustGet(t, r, "Name"))] = str(mustGet(t, r, "Value"))
		}
		suffixes[rules["prefix"]] = append(suffixes[rules["prefix"]], rules["suffix"])
	}
	got := suffixes["incoming/"]
	slices.Sort(got)
	want := append(caseVariants(".csv"), dropkey.ManifestName)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("incoming/ suffixes %v, want %v", got, want)
	}
	// S3 refuses two configurations of one event type whose prefixes and
	// suffixes both overlap (one ends with the other).
	for prefix, sfx := range suffixes {
		for i, a := range sfx {
			for _, b := range sfx[i+1:] {
				if strings.HasSuffix(a, b) || strings.HasSuffix(b, a) {
					t.Errorf("%s: suffixes %q and %q overlap", prefix, a, b)
				}
			}
		}
	}
	// What ingest then does with such a key: a CSV like any other, and
	// only the lower-case manifest.json is a manifest.
	const dir = "incoming/6b2a4c1e-7d3f-4e8a-9b5c-0d1e2f3a4b5c/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d/11111111-2222-4333-8444-555555555555/99999999-8888-4777-8666-555555555555/"
	for _, v := range caseVariants(".csv") {
		k, err := dropkey.Parse(dir+"export"+v, "incoming/", nil)
		if err != nil || k.Kind != dropkey.CSV || k.File != "export"+v {
			t.Errorf("%s: %+v, %v; want a CSV named export%s", v, k, err, v)
		}
	}
	if _, err := dropkey.Parse(dir+"MANIFEST.JSON", "incoming/", nil); err == nil {
		t.Error("MANIFEST.JSON parsed; the trigger only covers manifest.json, so the parser must refuse it too")
	}
}
