package deploytest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/testenv"
)

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

func loadTemplate(t *testing.T) map[string]any {
	t.Helper()
	tpl, err := LoadTemplate(repoPath(t, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func mustGet(t *testing.T, v any, path ...any) any {
	t.Helper()
	got, ok := Get(v, path...)
	if !ok {
		t.Fatalf("template has no %v", path)
	}
	return got
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	if s, ok := v.([]any); ok {
		return s
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func ref(name string) map[string]any { return map[string]any{"Ref": name} }

func getAtt(res, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{res, attr}}
}

// bucketName is the expression naming the drop bucket; policies and the
// STATE_BUCKET setting must repeat it exactly (a !Ref would make a cycle).
func bucketName(t *testing.T, tpl map[string]any) string {
	t.Helper()
	name := str(mustGet(t, tpl, "Resources", "DropBucket", "Properties", "BucketName", "Fn::Sub"))
	if !strings.Contains(name, "${AWS::StackName}") || !strings.Contains(name, "${AWS::AccountId}") {
		t.Fatalf("bucket name %q: want !Sub with the stack name and account id, unique per stack", name)
	}
	return name
}

func TestTemplateIsSAM(t *testing.T) {
	tpl := loadTemplate(t)
	if got := str(tpl["Transform"]); got != "AWS::Serverless-2016-10-31" {
		t.Fatalf("Transform = %q", got)
	}
}

func TestTemplateDropBucketIsPrivateEncryptedVersioned(t *testing.T) {
	tpl := loadTemplate(t)
	props := mustGet(t, tpl, "Resources", "DropBucket", "Properties")

	algo := str(mustGet(t, props, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm"))
	if algo != "AES256" && algo != "aws:kms" {
		t.Errorf("SSEAlgorithm = %q, want AES256 or aws:kms", algo)
	}
	if got := str(mustGet(t, props, "VersioningConfiguration", "Status")); got != "Enabled" {
		t.Errorf("versioning = %q, want Enabled", got)
	}
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if got := str(mustGet(t, props, "PublicAccessBlockConfiguration", k)); got != "true" {
			t.Errorf("PublicAccessBlockConfiguration.%s = %q, want true", k, got)
		}
	}
	bucketName(t, tpl)
}

func TestTemplateBucketPolicyDeniesPlainHTTP(t *testing.T) {
	tpl := loadTemplate(t)
	var policy map[string]any
	for _, r := range tpl["Resources"].(map[string]any) {
		if str(mustGet(t, r, "Type")) == "AWS::S3::BucketPolicy" && reflect.DeepEqual(mustGet(t, r, "Properties", "Bucket"), ref("DropBucket")) {
			policy = r.(map[string]any)
		}
	}
	if policy == nil {
		t.Fatal("no AWS::S3::BucketPolicy on DropBucket")
	}
	for _, st := range list(mustGet(t, policy, "Properties", "PolicyDocument", "Statement")) {
		cond, _ := Get(st, "Condition", "Bool", "aws:SecureTransport")
		if str(mustGet(t, st, "Effect")) != "Deny" || str(cond) != "false" {
			continue
		}
		res := list(mustGet(t, st, "Resource"))
		wantBucket, wantObjects := false, false
		for _, r := range res {
			wantBucket = wantBucket || reflect.DeepEqual(r, getAtt("DropBucket", "Arn"))
			wantObjects = wantObjects || reflect.DeepEqual(r, map[string]any{"Fn::Sub": "${DropBucket.Arn}/*"})
		}
		if !wantBucket || !wantObjects {
			t.Errorf("TLS deny covers %v, want the bucket and its objects", res)
		}
		if a := list(st.(map[string]any)["Action"]); !slices.Contains(a, "s3:*") {
			t.Errorf("TLS deny actions %v, want s3:*", a)
		}
		return
	}
	t.Fatal("no Deny statement with aws:SecureTransport false")
}

func TestTemplateLifecycleExpiresOldData(t *testing.T) {
	tpl := loadTemplate(t)
	rules := list(mustGet(t, tpl, "Resources", "DropBucket", "Properties", "LifecycleConfiguration", "Rules"))
	find := func(match func(rule any) bool) bool {
		for _, r := range rules {
			if str(mustGet(t, r, "Status")) == "Enabled" && match(r) {
				return true
			}
		}
		return false
	}
	prefix := func(r any) string {
		p, _ := Get(r, "Prefix")
		if p == nil {
			p, _ = Get(r, "Filter", "Prefix")
		}
		return str(p)
	}
	tests := []struct {
		name  string
		match func(rule any) bool
	}{
		{"noncurrent versions expire everywhere", func(r any) bool {
			_, ok := Get(r, "NoncurrentVersionExpiration", "NoncurrentDays")
			return ok && prefix(r) == ""
		}},
		{"old reports expire under state/reports/", func(r any) bool {
			_, ok := Get(r, "ExpirationInDays")
			return ok && prefix(r) == "state/reports/"
		}},
		{"old ledger versions expire under state/", func(r any) bool {
			_, ok := Get(r, "NoncurrentVersionExpiration", "NoncurrentDays")
			return ok && prefix(r) == "state/"
		}},
	}
	for _, tt := range tests {
		if !find(tt.match) {
			t.Errorf("no enabled lifecycle rule: %s", tt.name)
		}
	}
	// Nothing under incoming/ is ever deleted by age: a dropped file stays.
	for _, r := range rules {
		if _, ok := Get(r, "ExpirationInDays"); ok && !strings.HasPrefix(prefix(r), "state/") {
			t.Errorf("rule %v expires current objects outside state/", mustGet(t, r, "Id"))
		}
	}
}

func TestTemplateIngestTriggersOnCSVManifestAndStandingData(t *testing.T) {
	tpl := loadTemplate(t)
	evs := mustGet(t, tpl, "Resources", "IngestFunction", "Properties", "Events").(map[string]any)
	var triggers []string // prefix + suffix
	for name, ev := range evs {
		if str(mustGet(t, ev, "Type")) != "S3" {
			continue
		}
		if b := mustGet(t, ev, "Properties", "Bucket"); !reflect.DeepEqual(b, ref("DropBucket")) {
			t.Errorf("event %s: bucket %v, want !Ref DropBucket", name, b)
		}
		if e := list(mustGet(t, ev, "Properties", "Events")); !reflect.DeepEqual(e, []any{"s3:ObjectCreated:*"}) {
			t.Errorf("event %s: events %v, want s3:ObjectCreated:*", name, e)
		}
		rules := map[string]string{}
		for _, r := range list(mustGet(t, ev, "Properties", "Filter", "S3Key", "Rules")) {
			rules[str(mustGet(t, r, "Name"))] = str(mustGet(t, r, "Value"))
		}
		switch rules["prefix"] {
		case "incoming/":
		case "standing/":
			triggers = append(triggers, rules["prefix"]+" "+rules["suffix"])
		default:
			t.Errorf("event %s: prefix %q, want incoming/ or standing/", name, rules["prefix"])
		}
	}
	if want := []string{"standing/ .csv"}; !slices.Equal(triggers, want) {
		t.Errorf("standing-data triggers (prefix suffix) %v, want %v", triggers, want)
	}
	// The suffixes: TestTemplateEveryCaseOfCSVTriggersIngest.
}

func TestTemplateIngestRetriesThenQueuesFailures(t *testing.T) {
	tpl := loadTemplate(t)
	fn := mustGet(t, tpl, "Resources", "IngestFunction", "Properties")
	cfg := mustGet(t, fn, "EventInvokeConfig")
	if got := str(mustGet(t, cfg, "MaximumRetryAttempts")); got != "2" {
		t.Errorf("MaximumRetryAttempts = %q, want 2", got)
	}
	if got := str(mustGet(t, cfg, "DestinationConfig", "OnFailure", "Type")); got != "SQS" {
		t.Errorf("OnFailure type %q, want SQS", got)
	}
	dest := mustGet(t, cfg, "DestinationConfig", "OnFailure", "Destination")
	if !reflect.DeepEqual(dest, getAtt("FailureQueue", "Arn")) {
		t.Errorf("OnFailure destination %v, want !GetAtt FailureQueue.Arn", dest)
	}
	checkEncryptedQueue(t, tpl, "FailureQueue")

	// Reservations: TestTemplateReservedConcurrencyZeroReservesNothing.
	if got := str(mustGet(t, fn, "Timeout")); got != "900" {
		t.Errorf("ingest Timeout = %s, want 900 (large files stream for minutes)", got)
	}
}

func checkEncryptedQueue(t *testing.T, tpl map[string]any, name string) {
	t.Helper()
	q := mustGet(t, tpl, "Resources", name)
	if str(mustGet(t, q, "Type")) != "AWS::SQS::Queue" {
		t.Fatalf("%s is not an SQS queue", name)
	}
	sse, _ := Get(q, "Properties", "SqsManagedSseEnabled")
	kms, _ := Get(q, "Properties", "KmsMasterKeyId")
	if str(sse) != "true" && kms == nil {
		t.Errorf("queue %s is not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)", name)
	}
}

func TestTemplateScheduledFunctionsRunEveryFiveMinutes(t *testing.T) {
	for _, fn := range []string{"FinalizeFunction", "DiscoverFunction"} {
		t.Run(fn, func(t *testing.T) { checkSchedule(t, fn) })
	}
}

func checkSchedule(t *testing.T, fn string) {
	tpl := loadTemplate(t)
	evs := mustGet(t, tpl, "Resources", fn, "Properties", "Events").(map[string]any)
	var schedule any
	for _, ev := range evs {
		if str(mustGet(t, ev, "Type")) == "ScheduleV2" {
			schedule = ev
		}
	}
	if schedule == nil {
		t.Fatalf("%s has no ScheduleV2 event", fn)
	}
	if got := str(mustGet(t, schedule, "Properties", "ScheduleExpression")); got != "rate(5 minutes)" {
		t.Errorf("schedule %q, want rate(5 minutes)", got)
	}
	mustGet(t, schedule, "Properties", "RetryPolicy", "MaximumRetryAttempts")
	dlq := mustGet(t, schedule, "Properties", "DeadLetterConfig", "Arn")
	att, ok := Get(dlq, "Fn::GetAtt")
	if !ok {
		t.Fatalf("DeadLetterConfig.Arn = %v, want !GetAtt of a queue", dlq)
	}
	checkEncryptedQueue(t, tpl, str(list(att)[0]))

	// The payload is ours, in the shape of events/scheduled.json.
	input := str(mustGet(t, schedule, "Properties", "Input", "Fn::Sub"))
	input = regexp.MustCompile(`\$\{[^}]+\}`).ReplaceAllString(input, "x")
	var got, want map[string]any
	if err := json.Unmarshal([]byte(input), &got); err != nil {
		t.Fatalf("schedule input is not JSON: %v\n%s", err, input)
	}
	data, err := os.ReadFile(repoPath(t, "events/scheduled.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys(got), keys(want)) || got["detail-type"] != want["detail-type"] || got["source"] != want["source"] {
		t.Errorf("schedule input %v does not have the shape of events/scheduled.json %v", got, want)
	}
}

func keys(m map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// prop returns a function property, falling back to Globals.Function.
func prop(tpl map[string]any, fn string, path ...any) (any, bool) {
	if v, ok := Get(tpl, append([]any{"Resources", fn, "Properties"}, path...)...); ok {
		return v, true
	}
	return Get(tpl, append([]any{"Globals", "Function"}, path...)...)
}

var functions = []string{"IngestFunction", "FinalizeFunction", "DiscoverFunction"}

func TestTemplateFunctionsAreArm64CustomRuntimeBootstraps(t *testing.T) {
	tpl := loadTemplate(t)
	for _, fn := range functions {
		t.Run(fn, func(t *testing.T) {
			if str(mustGet(t, tpl, "Resources", fn, "Type")) != "AWS::Serverless::Function" {
				t.Fatal("not an AWS::Serverless::Function")
			}
			for _, tt := range []struct {
				path []any
				want any
			}{
				{[]any{"Runtime"}, "provided.al2023"},
				{[]any{"Architectures"}, []any{"arm64"}},
				{[]any{"Handler"}, "bootstrap"},
				{[]any{"LoggingConfig", "LogFormat"}, "JSON"},
			} {
				got, ok := prop(tpl, fn, tt.path...)
				if !ok || !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%v = %v, want %v", tt.path, got, tt.want)
				}
			}
			if got := str(mustGet(t, tpl, "Resources", fn, "Metadata", "BuildMethod")); got != "makefile" {
				t.Errorf("Metadata.BuildMethod = %q, want makefile (the Makefile's build-%s)", got, fn)
			}
		})
	}
}

// settings is product.md's settings table. AZURE_CLIENT_SECRET,
// AWS_ENDPOINT_URL_S3 and S3_USE_PATH_STYLE are for local runs only.
var (
	deployedSettings = []string{
		"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "GRAPH_ENDPOINT",
		"GRAPH_API", "STATE_BUCKET", "STATE_PREFIX", "INCOMING_PREFIX", "ROUTES", "ROUTES_OBJECT",
		"UPLOAD_WINDOW", "QUIET_PERIOD", "CLOSE_MARGIN", "GRAPH_CREDENTIAL", "GRAPH_SECRET_ARN",
		"DROP_BUCKET", "STANDING_PREFIX", "REVIEWS_API",
	}
	localOnlySettings = []string{"AZURE_CLIENT_SECRET", "AWS_ENDPOINT_URL_S3", "S3_USE_PATH_STYLE"}
)

func environment(t *testing.T, tpl map[string]any, fn string) map[string]any {
	t.Helper()
	env := map[string]any{}
	for _, path := range [][]any{
		{"Globals", "Function", "Environment", "Variables"},
		{"Resources", fn, "Properties", "Environment", "Variables"},
	} {
		if v, ok := Get(tpl, path...); ok {
			for k, val := range v.(map[string]any) {
				env[k] = val
			}
		}
	}
	return env
}

func TestTemplateWiresEverySetting(t *testing.T) {
	tpl := loadTemplate(t)
	name := bucketName(t, tpl)
	for _, fn := range functions {
		env := environment(t, tpl, fn)
		for _, k := range deployedSettings {
			if _, ok := env[k]; !ok {
				t.Errorf("%s: setting %s not in the environment", fn, k)
			}
		}
		for _, k := range localOnlySettings {
			if _, ok := env[k]; ok {
				t.Errorf("%s: local-only setting %s is set in AWS", fn, k)
			}
		}
		for k, want := range map[string]any{
			"STATE_PREFIX":    "state/",
			"INCOMING_PREFIX": "incoming/",
			"STATE_BUCKET":    map[string]any{"Fn::Sub": name},
			"DROP_BUCKET":     map[string]any{"Fn::Sub": name},
			"STANDING_PREFIX": "standing/",
			"REVIEWS_API":     ref("ReviewsApi"),
		} {
			if !reflect.DeepEqual(env[k], want) {
				t.Errorf("%s: %s = %v, want %v", fn, k, env[k], want)
			}
		}
	}
}

func TestTemplateParametersMatchProductDefaults(t *testing.T) {
	tpl := loadTemplate(t)
	params := mustGet(t, tpl, "Parameters").(map[string]any)
	tests := []struct {
		param, def string
		allowed    []string
	}{
		{"TenantId", "", nil},
		{"ClientId", "", nil},
		{"ClientSecretArn", "", nil},
		{"GraphApi", "v1.0", []string{"v1.0", "beta", "beta-2025"}},
		{"ReviewsApi", "beta", []string{"beta", "v1.0"}},
		{"GraphCredential", "secret", []string{"secret", "certificate", "aws-federation"}},
		{"Routes", "{}", nil},
		{"UploadWindow", "2h", nil},
		{"QuietPeriod", "10m", nil},
		{"CloseMargin", "15m", nil},
		{"GraphEndpoint", "https://graph.microsoft.com", nil},
		{"AuthorityHost", "https://login.microsoftonline.com/", nil},
		{"ReservedConcurrency", "", nil},
		{"MemorySize", "256", nil},
	}
	for _, tt := range tests {
		p, ok := params[tt.param]
		if !ok {
			t.Errorf("parameter %s missing", tt.param)
			continue
		}
		if tt.def != "" {
			if got, _ := Get(p, "Default"); str(got) != tt.def {
				t.Errorf("%s default %v, want %q", tt.param, got, tt.def)
			}
		}
		if tt.allowed != nil {
			got, _ := Get(p, "AllowedValues")
			var vals []string
			for _, v := range list(got) {
				vals = append(vals, str(v))
			}
			if !slices.Equal(vals, tt.allowed) {
				t.Errorf("%s allowed values %v, want %v", tt.param, vals, tt.allowed)
			}
		}
	}
}

func TestTemplateParameterPatternsAcceptTheirDefaults(t *testing.T) {
	tpl := loadTemplate(t)
	samples := map[string][]string{
		"UploadWindow":    {"2h", "90m", "1h30m"},
		"ClientSecretArn": {"", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-AbCdEf"},
		"TenantId":        {"0e0e0e0e-0000-4000-8000-00000000aaaa"},
	}
	rejects := map[string][]string{
		"UploadWindow":    {"2 hours", "", "-1h"},
		"ClientSecretArn": {"byodrop/graph", "arn:aws:s3:::bucket"},
		"TenantId":        {"contoso.onmicrosoft.com", ""},
		"GraphEndpoint":   {"http://graph.microsoft.com"},
	}
	for name, p := range mustGet(t, tpl, "Parameters").(map[string]any) {
		pat, ok := Get(p, "AllowedPattern")
		if !ok {
			continue
		}
		// CloudFormation matches the whole value.
		re, err := regexp.Compile("^(?:" + str(pat) + ")$")
		if err != nil {
			t.Errorf("%s: pattern %q: %v", name, pat, err)
			continue
		}
		if def, ok := Get(p, "Default"); ok && !re.MatchString(str(def)) {
			t.Errorf("%s: default %q does not match its own pattern %q", name, def, pat)
		}
		for _, s := range samples[name] {
			if !re.MatchString(s) {
				t.Errorf("%s: pattern refuses valid %q", name, s)
			}
		}
		for _, s := range rejects[name] {
			if re.MatchString(s) {
				t.Errorf("%s: pattern accepts invalid %q", name, s)
			}
		}
	}
}

// statements returns every policy statement of a function, with the
// condition name of an enclosing !If ("" when unconditional).
func statements(t *testing.T, tpl map[string]any, fn string) (out []struct {
	cond string
	st   map[string]any
}) {
	t.Helper()
	for _, pol := range list(mustGet(t, tpl, "Resources", fn, "Properties", "Policies")) {
		sts, ok := Get(pol, "Statement")
		if !ok {
			t.Fatalf("%s: policy %v is not an inline policy document; use explicit statements", fn, pol)
		}
		for _, st := range list(sts) {
			cond := ""
			if iff, ok := Get(st, "Fn::If"); ok {
				args := list(iff)
				cond, st = str(args[0]), args[1]
				if other := args[2]; !reflect.DeepEqual(other, ref("AWS::NoValue")) {
					t.Errorf("%s: !If %s has an else branch %v; want AWS::NoValue", fn, cond, other)
				}
			}
			m, ok := st.(map[string]any)
			if !ok {
				t.Fatalf("%s: statement %v is not a mapping", fn, st)
			}
			out = append(out, struct {
				cond string
				st   map[string]any
			}{cond, m})
		}
	}
	return out
}

func TestTemplatePoliciesAreLeastPrivilege(t *testing.T) {
	tpl := loadTemplate(t)
	bucketARN := "arn:${AWS::Partition}:s3:::" + bucketName(t, tpl)
	for _, fn := range functions {
		t.Run(fn, func(t *testing.T) {
			canReadState, canWriteState := false, false
			for _, s := range statements(t, tpl, fn) {
				if str(s.st["Effect"]) != "Allow" {
					continue
				}
				actions := list(s.st["Action"])
				resources := list(s.st["Resource"])
				for _, a := range actions {
					action := str(a)
					service, _, _ := strings.Cut(action, ":")
					if strings.Contains(action, "*") {
						t.Errorf("wildcard action %q", action)
					}
					if service != "s3" && service != "secretsmanager" && service != "kms" {
						continue
					}
					for _, r := range resources {
						if str(r) == "*" {
							t.Errorf("action %s on resource *", action)
						}
					}
				}
				for _, r := range resources {
					sub, isSub := Get(r, "Fn::Sub")
					switch {
					case slices.Contains(actions, any("s3:ListBucketVersions")):
						if !isSub || str(sub) != bucketARN || len(actions) != 1 {
							t.Errorf("s3:ListBucketVersions on %v, want %s alone", r, bucketARN)
						}
						p, _ := Get(s.st, "Condition", "StringLike", "s3:prefix")
						if !reflect.DeepEqual(list(p), []any{"standing/*"}) {
							t.Errorf("s3:ListBucketVersions with prefix condition %v, want standing/* only", p)
						}
					case slices.Contains(actions, any("s3:ListBucket")):
						if !isSub || str(sub) != bucketARN {
							t.Errorf("s3:ListBucket on %v, want %s", r, bucketARN)
						}
						if _, ok := Get(s.st, "Condition", "StringLike", "s3:prefix"); !ok {
							t.Error("s3:ListBucket without an s3:prefix condition")
						}
					case strings.HasPrefix(str(list(actions)[0]), "s3:"):
						arn := str(sub)
						// Each object action on the one place it is needed.
						allowed := map[string][]string{
							bucketARN + "/incoming/*":       {"s3:GetObject", "s3:GetObjectVersion"},
							bucketARN + "/standing/*":       {"s3:GetObject", "s3:GetObjectVersion"},
							bucketARN + "/state/*":          {"s3:GetObject", "s3:PutObject"},
							bucketARN + "/state/sessions/*": {"s3:PutObjectTagging"},
							bucketARN + "/state/open/*":     {"s3:DeleteObject"},
						}
						ok, known := allowed[arn]
						if !known {
							t.Errorf("S3 object actions %v on %v, want %s/incoming/*, /standing/*, /state/*, /state/sessions/* or /state/open/*", actions, r, bucketARN)
						}
						for _, a := range actions {
							if known && !slices.Contains(ok, str(a)) {
								t.Errorf("%s on %s: only %v belong there", str(a), arn, ok)
							}
						}
						if arn == bucketARN+"/incoming/*" || arn == bucketARN+"/standing/*" {
							for _, a := range actions {
								if !strings.HasPrefix(str(a), "s3:Get") {
									t.Errorf("%s on %s: dropped files are read-only", str(a), arn)
								}
							}
						}
						if fn == "FinalizeFunction" && !strings.HasPrefix(arn, bucketARN+"/state/") {
							t.Errorf("the finalizer reads only the ledger, not %s", arn)
						}
						if fn == "DiscoverFunction" && arn == bucketARN+"/incoming/*" {
							t.Error("discovery reads only standing data and the ledger, not incoming/")
						}
						if arn == bucketARN+"/state/*" {
							canReadState = canReadState || slices.Contains(actions, any("s3:GetObject"))
							canWriteState = canWriteState || slices.Contains(actions, any("s3:PutObject"))
						}
					case slices.Contains(actions, any("secretsmanager:GetSecretValue")):
						if !reflect.DeepEqual(r, ref("ClientSecretArn")) && !reflect.DeepEqual(r, map[string]any{"Fn::Sub": "${ClientSecretArn}-??????"}) {
							t.Errorf("secretsmanager:GetSecretValue on %v, want !Ref ClientSecretArn or it with the random suffix", r)
						}
						if s.cond != "ReadsClientSecret" {
							t.Errorf("secret statement under condition %q, want ReadsClientSecret", s.cond)
						}
					case slices.Contains(actions, any("kms:Decrypt")):
						if !reflect.DeepEqual(r, ref("SecretKmsKeyArn")) || s.cond != "DecryptsClientSecret" {
							t.Errorf("kms:Decrypt on %v under condition %q, want !Ref SecretKmsKeyArn under DecryptsClientSecret", r, s.cond)
						}
						via, _ := Get(s.st, "Condition", "StringEquals", "kms:ViaService")
						if !reflect.DeepEqual(via, map[string]any{"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}) {
							t.Errorf("kms:Decrypt through %v, want only through Secrets Manager", via)
						}
					case slices.Contains(actions, any("sts:GetWebIdentityToken")):
						// Checked in full by TestTemplateFederationPolicyMatchesWhatTheFunctionsAsk.
						if s.cond != "UsesAwsFederation" {
							t.Errorf("sts:GetWebIdentityToken under condition %q, want UsesAwsFederation", s.cond)
						}
					}
				}
			}
			if !canReadState || !canWriteState {
				t.Errorf("state/ read %v write %v: the ledger needs both", canReadState, canWriteState)
			}
		})
	}
	// The conditions the statements use exist.
	for _, c := range []string{"HasClientSecret", "UsesAwsFederation", "ReadsClientSecret"} {
		mustGet(t, tpl, "Conditions", c)
	}
}

func TestTemplateOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	for name, want := range map[string]any{
		"DropBucketName":             ref("DropBucket"),
		"FailureQueueUrl":            ref("FailureQueue"),
		"FinalizeDeadLetterQueueUrl": ref("FinalizeDeadLetterQueue"),
		"IngestFunctionArn":          getAtt("IngestFunction", "Arn"),
		"FinalizeFunctionArn":        getAtt("FinalizeFunction", "Arn"),
		"DiscoverFunctionArn":        getAtt("DiscoverFunction", "Arn"),
		"DiscoverDeadLetterQueueUrl": ref("DiscoverDeadLetterQueue"),
	} {
		if got := mustGet(t, tpl, "Outputs", name, "Value"); !reflect.DeepEqual(got, want) {
			t.Errorf("output %s = %v, want %v", name, got, want)
		}
	}
}

func TestTemplatePassesCfnLint(t *testing.T) {
	// cfn-lint is a Python tool that .ci/run cannot install (no PyPI here),
	// so its absence skips even when BYODROP_REQUIRE_TOOLS=1.
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not found on PATH; skipping template lint")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lint, "template.yaml")
	cmd.Dir = repoPath(t, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}
