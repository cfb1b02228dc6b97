package metrics

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Queues are the SQS queues of template.yaml, by logical id, whose depth
// the dashboard shows: events and runs that need a person.
var Queues = []string{"FailureQueue", "FinalizeDeadLetterQueue", "DiscoverDeadLetterQueue"}

// DashboardPeriod is the period, in seconds, of every dashboard graph: the
// finalizer's schedule, so that each of its runs is one point.
const DashboardPeriod = 300

// panel is one graph of the dashboard.
type panel struct {
	title string
	stat  string   // the graph's statistic
	names []Metric // byodrop metrics, one line per function that writes it
	// stats, when set, draws one line per statistic instead of one stat.
	stats []string
	// right puts these metrics on the right axis.
	right []Metric
	// aws draws an AWS metric per function or queue instead.
	aws *awsMetric
}

type awsMetric struct {
	namespace, name, dimension string
	perQueue                   bool // per queue of Queues, else per function
}

// panels are the dashboard's graphs, in order. Every metric of Written is
// on one of them (TestDashboardShowsEveryMetricWritten).
var panels = []panel{
	{title: "Files by outcome", stat: "Sum", names: []Metric{FilesUploaded, FilesRejected, FilesDuplicate, FilesLate, FilesFailed, FilesExpired}},
	{title: "Bytes and rows uploaded", stat: "Sum", names: []Metric{BytesUploaded, RowsUploaded}, right: []Metric{RowsUploaded}},
	{title: "Upload duration (ms): p50, p90, p99", stat: "p50", names: []Metric{UploadDuration}, stats: []string{"p50", "p90", "p99"}},
	{title: "Sessions closed and expired", stat: "Sum", names: []Metric{SessionsClosed, SessionsExpired}},
	{title: "Reviews discovered, served, without data, failed", stat: "Sum", names: []Metric{ReviewsDiscovered, ReviewsServed, ReviewsWithoutData, ReviewsFailed}},
	{title: "Standing files: ready and rejected on drop, sent to reviews", stat: "Sum", names: []Metric{StandingReady, StandingRejected, StandingFilesSent}},
	{title: "Graph retries", stat: "Sum", names: []Metric{GraphRetries}},
	{title: "Queue depths (messages waiting)", stat: "Maximum", aws: &awsMetric{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", true}},
	{title: "Function errors", stat: "Sum", aws: &awsMetric{"AWS/Lambda", "Errors", "FunctionName", false}},
	{title: "Function durations (ms): p50, p99", stat: "p50", stats: []string{"p50", "p99"}, aws: &awsMetric{"AWS/Lambda", "Duration", "FunctionName", false}},
}

// Dashboard returns the body of the stack's CloudWatch dashboard, for
// Fn::Sub in template.yaml: each function is named ${<logical id>} (its
// name), each queue ${<logical id>.QueueName}, the region ${AWS::Region}.
// The byodrop metrics are those of Written, so the dashboard cannot show a
// metric nobody writes, nor miss one. One widget per line keeps the
// template's diff readable.
func Dashboard() string {
	var b strings.Builder
	b.WriteString("{\"widgets\": [\n")
	for i, p := range panels {
		w := map[string]any{
			"type": "metric", "width": 12, "height": 6, "x": 12 * (i % 2), "y": 6 * (i / 2),
			"properties": map[string]any{
				"title": p.title, "region": "${AWS::Region}", "view": "timeSeries", "stacked": false,
				"period": DashboardPeriod, "stat": p.stat, "metrics": p.lines(),
				"yAxis": map[string]any{"left": map[string]any{"min": 0}},
			},
		}
		b.WriteString("  ")
		b.Write(encodeJSON(w))
		if i < len(panels)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.String()
}

// lines returns the panel's metric lines in the dashboard's array form:
// namespace, name, dimension name, dimension value, then the options.
func (p panel) lines() [][]any {
	stats := p.stats
	if len(stats) == 0 {
		stats = []string{""}
	}
	var out [][]any
	add := func(namespace, name, dimension, value, label string, right bool) {
		for _, st := range stats {
			opts := map[string]any{"label": label}
			if st != "" {
				opts["stat"] = st
				opts["label"] = label + " " + st
			}
			if right {
				opts["yAxis"] = "right"
			}
			out = append(out, []any{namespace, name, dimension, value, opts})
		}
	}
	if p.aws != nil {
		targets, value := Functions(), func(id string) string { return "${" + id + "}" }
		if p.aws.perQueue {
			targets, value = Queues, func(id string) string { return "${" + id + ".QueueName}" }
		}
		for _, id := range targets {
			add(p.aws.namespace, p.aws.name, p.aws.dimension, value(id), id, false)
		}
		return out
	}
	for _, m := range p.names {
		right := false
		for _, r := range p.right {
			right = right || r == m
		}
		for _, fn := range Functions() {
			if Writes(fn, m) {
				add(Namespace, m.Name, Dimension, "${"+fn+"}", m.Name+" ("+shortName(fn)+")", right)
			}
		}
	}
	return out
}

// shortName is "ingest" for IngestFunction.
func shortName(logicalID string) string {
	return strings.ToLower(strings.TrimSuffix(logicalID, "Function"))
}

// encodeJSON marshals v compactly, without HTML escaping (the body is read
// by CloudWatch, not a browser).
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // maps of strings and numbers always encode
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
