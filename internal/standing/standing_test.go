package standing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/blob"
	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/ledger"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

const (
	cat  = "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	res  = "7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c"
	res2 = "8c3bae40-5d6f-4071-acbd-2e3f4a5b6c7d"
)

var routes = dropkey.Routes{"badges": {CatalogID: cat, ResourceID: res, Source: "Door badges"}}

const header = "principalId,principalType,permissionId,permissionName,permissionDescription,permissionType\n"

func goodCSV(rows int) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for i := range rows {
		fmt.Fprintf(&b, "00000000-0000-4000-8000-%012d,user,door-%d,Door %d,,badge\n", i, i%3, i%3)
	}
	return b.Bytes()
}

// badCSV has a bad principal id on line 3.
func badCSV() []byte {
	return []byte(header + "00000000-0000-4000-8000-000000000001,user,door-1,Door 1,,badge\nbob,user,door-1,Door 1,,badge\n")
}

// countingS3 counts the requests the package makes.
type countingS3 struct {
	c                         *s3.Client
	gets, lists, versionLists atomic.Int64
}

func (c *countingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.gets.Add(1)
	return c.c.GetObject(ctx, in, opts...)
}

func (c *countingS3) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	c.versionLists.Add(1)
	return c.c.ListObjectVersions(ctx, in, opts...)
}

func (c *countingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.c.ListObjectsV2(ctx, in, opts...)
}

// faultyStore fails the next writes of keys containing a word.
type faultyStore struct {
	blob.Store
	mu   sync.Mutex
	word string
	left int
}

var errInjected = &review.Error{Kind: review.Transient, Msg: "injected write failure"}

func (f *faultyStore) fail(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left > 0 && strings.Contains(key, f.word) {
		f.left--
		return true
	}
	return false
}

func (f *faultyStore) failNext(word string, n int) {
	f.mu.Lock()
	f.word, f.left = word, n
	f.mu.Unlock()
}

func (f *faultyStore) Create(ctx context.Context, key string, data []byte) (string, error) {
	if f.fail(key) {
		return "", errInjected
	}
	return f.Store.Create(ctx, key, data)
}

func (f *faultyStore) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if f.fail(key) {
		return "", errInjected
	}
	return f.Store.Replace(ctx, key, data, etag)
}

func (f *faultyStore) Put(ctx context.Context, key string, data []byte) (string, error) {
	if f.fail(key) {
		return "", errInjected
	}
	return f.Store.Put(ctx, key, data)
}

type world struct {
	t      *testing.T
	ctx    context.Context
	bucket string
	s3     *s3.Client
	count  *countingS3
	store  *faultyStore
	led    *ledger.Ledger
	st     *Store
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := testenv.SharedS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, bucket: srv.NewBucket(t, true), s3: srv.Client()}
	w.count = &countingS3{c: w.s3}
	w.store = &faultyStore{Store: &blob.S3{Client: w.s3, Bucket: w.bucket}}
	w.led = ledger.New(w.store, "state/")
	w.st = New(Config{S3: w.count, Ledger: w.led, Routes: routes, Log: quiet})
	return w
}

// put writes a version and returns the Object its event would name.
func (w *world) put(key string, data []byte) Object {
	w.t.Helper()
	out, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{Bucket: &w.bucket, Key: &key, Body: bytes.NewReader(data)})
	if err != nil {
		w.t.Fatal(err)
	}
	return Object{Bucket: w.bucket, Key: key, VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag)}
}

func (w *world) drop(o Object) review.Report {
	w.t.Helper()
	rep, err := w.st.Drop(w.ctx, o)
	if err != nil {
		w.t.Fatalf("Drop(%s %s): %v", o.Key, o.VersionID, err)
	}
	return rep
}

func (w *world) report(key string) *review.Report {
	w.t.Helper()
	r, err := w.led.Report(w.ctx, key)
	if err != nil {
		w.t.Fatalf("report of %s: %v", key, err)
	}
	return r
}

func (w *world) choose(catalog, resource string) []Choice {
	w.t.Helper()
	inv, err := w.st.List(w.ctx, w.bucket)
	if err != nil {
		w.t.Fatal(err)
	}
	cs, err := w.st.Choose(w.ctx, inv, catalog, resource)
	if err != nil {
		w.t.Fatal(err)
	}
	return cs
}

func (w *world) read(key string, c Choice) []byte {
	w.t.Helper()
	body, _, err := w.st.Open(w.ctx, w.bucket, c)
	if err != nil {
		w.t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

const routeKey = "standing/badges/access.csv"

func TestDropOfAValidFileIsReady(t *testing.T) {
	w := newWorld(t)
	data := goodCSV(45)
	o := w.put(routeKey, data)
	rep := w.drop(o)
	want := review.Report{Key: routeKey, VersionID: o.VersionID, ETag: strings.Trim(o.ETag, `"`), Status: review.Ready,
		CatalogID: cat, ResourceID: res, Bytes: int64(len(data)), Rows: 45}
	got := *w.report(routeKey)
	if got.At.IsZero() {
		t.Error("report without a time")
	}
	got.At, rep.At = time.Time{}, time.Time{}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Errorf("report\n got %+v\nwant %+v\nreturned %+v", got, want, rep)
	}
	rec, err := w.st.Record(w.ctx, routeKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Versions) != 1 || !rec.Versions[0].IsReady() || rec.Versions[0].VersionID != o.VersionID || rec.Versions[0].LastModified.IsZero() {
		t.Errorf("record %+v", rec)
	}
	if k := w.st.RecordKey(routeKey); k != "state/standing/badges/access.csv.json" {
		t.Errorf("record key %s", k)
	}
}

func TestBadExportAfterAGoodOneFallsBack(t *testing.T) {
	w := newWorld(t)
	good := goodCSV(3)
	v1 := w.put(routeKey, good)
	w.drop(v1)
	v2 := w.put(routeKey, badCSV())
	rep := w.drop(v2)
	if rep.Status != review.Rejected || rep.VersionID != v2.VersionID || rep.FallbackVersionID != v1.VersionID {
		t.Fatalf("report %+v, want rejected %s with fallback %s", rep, v2.VersionID, v1.VersionID)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 3 || rep.Errors[0].Column != "principalId" || !strings.Contains(rep.Errors[0].Message, `"bob"`) {
		t.Errorf("errors %+v, want line 3, column principalId, naming \"bob\"", rep.Errors)
	}
	if got := w.report(routeKey); got.FallbackVersionID != v1.VersionID || got.Status != review.Rejected {
		t.Errorf("stored report %+v", got)
	}
	cs := w.choose(cat, res)
	if len(cs) != 1 || !cs[0].Ready || !cs[0].Fallback || cs[0].VersionID != v1.VersionID || cs[0].Current.VersionID != v2.VersionID ||
		cs[0].Rows != 3 || !strings.Contains(cs[0].Reason, "rejected") {
		t.Fatalf("choice %+v", cs)
	}
	// A third, good, export replaces the fallback; the chosen version is
	// read as chosen even after that.
	if got := w.read(routeKey, cs[0]); !bytes.Equal(got, good) {
		t.Errorf("Open read %q", got)
	}
	v3 := w.put(routeKey, goodCSV(5))
	if rep := w.drop(v3); rep.Status != review.Ready || rep.FallbackVersionID != "" {
		t.Errorf("third report %+v", rep)
	}
	if got := w.read(routeKey, cs[0]); !bytes.Equal(got, good) {
		t.Errorf("Open after a replacement read %q", got)
	}
	if cs := w.choose(cat, res); cs[0].VersionID != v3.VersionID || cs[0].Fallback || cs[0].Rows != 5 {
		t.Errorf("choice after a good export %+v", cs[0])
	}
}

func TestFirstExportBadHasNoData(t *testing.T) {
	w := newWorld(t)
	key := "standing/" + cat + "/" + res2 + "/access.csv"
	v1 := w.put(key, badCSV())
	rep := w.drop(v1)
	if rep.Status != review.Rejected || rep.FallbackVersionID != "" || rep.ResourceID != res2 {
		t.Fatalf("report %+v", rep)
	}
	cs := w.choose(cat, res2)
	if len(cs) != 1 || cs[0].Ready || cs[0].Current.Status != review.Rejected || !strings.Contains(cs[0].Reason, "no earlier version was ready") {
		t.Fatalf("choice %+v", cs)
	}
	if _, _, err := w.st.Open(w.ctx, w.bucket, cs[0]); review.KindOf(err) != review.Invalid {
		t.Errorf("Open of no version: %v", err)
	}
}

func TestConcurrentDropsOfTwoVersions(t *testing.T) {
	w := newWorld(t)
	v1 := w.put(routeKey, goodCSV(2))
	v2 := w.put(routeKey, badCSV())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		o := v1
		if i%2 == 1 {
			o = v2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.st.Drop(w.ctx, o); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rec, err := w.st.Record(w.ctx, routeKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Versions) != 2 || rec.Versions[0].VersionID != v1.VersionID || rec.Versions[1].VersionID != v2.VersionID {
		t.Fatalf("record %+v, want v1 then v2", rec.Versions)
	}
	// Whichever finished last, the report is about the newest version.
	if rep := w.report(routeKey); rep.VersionID != v2.VersionID || rep.Status != review.Rejected || rep.FallbackVersionID != v1.VersionID {
		t.Errorf("report %+v", rep)
	}
}

func TestLateEventOfAnOlderVersionKeepsTheNewerReport(t *testing.T) {
	w := newWorld(t)
	v1 := w.put(routeKey, goodCSV(2))
	v2 := w.put(routeKey, badCSV())
	w.drop(v2)
	if rep := w.report(routeKey); rep.FallbackVersionID != "" {
		t.Fatalf("no fallback is known yet: %+v", rep)
	}
	rep := w.drop(v1)
	if rep.VersionID != v2.VersionID || rep.FallbackVersionID != v1.VersionID {
		t.Errorf("report after the late event %+v, want v2 with fallback v1", rep)
	}
}

func TestRepeatedEventIsNotValidatedAgain(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, goodCSV(2))
	w.drop(o)
	gets := w.count.gets.Load()
	if rep := w.drop(o); rep.Status != review.Ready {
		t.Fatalf("report %+v", rep)
	}
	if n := w.count.gets.Load() - gets; n != 0 {
		t.Errorf("%d object reads for a repeated event, want 0", n)
	}
}

func TestCrashAfterTheRecordBeforeTheReport(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, badCSV())
	w.store.failNext("reports/", 1)
	if _, err := w.st.Drop(w.ctx, o); !errors.Is(err, errInjected) || !review.IsRetryable(err) {
		t.Fatalf("Drop: %v, want the injected, retryable failure", err)
	}
	if _, err := w.led.Report(w.ctx, routeKey); !blob.IsNotFound(err) {
		t.Fatalf("report after the failure: %v", err)
	}
	if rec, err := w.st.Record(w.ctx, routeKey); err != nil || len(rec.Versions) != 1 {
		t.Fatalf("record after the failure: %+v %v", rec, err)
	}
	gets := w.count.gets.Load()
	rep := w.drop(o) // Lambda's retry
	if rep.Status != review.Rejected || w.report(routeKey).VersionID != o.VersionID {
		t.Errorf("report after the retry %+v", rep)
	}
	if n := w.count.gets.Load() - gets; n != 0 {
		t.Errorf("the retry read the object %d times, want 0", n)
	}
}

func TestCrashBeforeTheRecordLeavesNothing(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, goodCSV(2))
	w.store.failNext("state/standing/", 1)
	if _, err := w.st.Drop(w.ctx, o); !errors.Is(err, errInjected) {
		t.Fatalf("Drop: %v", err)
	}
	if _, err := w.st.Record(w.ctx, routeKey); !blob.IsNotFound(err) {
		t.Fatalf("record: %v", err)
	}
	if _, err := w.led.Report(w.ctx, routeKey); !blob.IsNotFound(err) {
		t.Fatalf("report: %v", err)
	}
	if rep := w.drop(o); rep.Status != review.Ready {
		t.Errorf("retry: %+v", rep)
	}
}

func TestInvalidKeyIsRejectedWithoutARecord(t *testing.T) {
	w := newWorld(t)
	key := "standing/badges/old/access.csv"
	o := w.put(key, goodCSV(1))
	rep := w.drop(o)
	if rep.Status != review.Rejected || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Message, "subfolders") {
		t.Fatalf("report %+v", rep)
	}
	if _, err := w.st.Record(w.ctx, key); !blob.IsNotFound(err) {
		t.Errorf("record: %v", err)
	}
	if n := w.count.gets.Load(); n != 0 {
		t.Errorf("%d object reads for a refused key", n)
	}
}

func TestDeletedVersionBeforeItsEvent(t *testing.T) {
	w := newWorld(t)
	v1 := w.put(routeKey, goodCSV(1))
	w.drop(v1)
	v2 := w.put(routeKey, goodCSV(2))
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: &w.bucket, Key: aws.String(routeKey), VersionId: aws.String(v2.VersionID)}); err != nil {
		t.Fatal(err)
	}
	rep := w.drop(v2)
	if rep.VersionID != v1.VersionID || rep.Status != review.Ready {
		t.Errorf("report %+v, want v1's, unchanged", rep)
	}
	// With nothing recorded, the vanished version gets a rejection.
	key := "standing/" + cat + "/" + res + "/gone.csv"
	g := w.put(key, goodCSV(1))
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: &w.bucket, Key: aws.String(key), VersionId: aws.String(g.VersionID)}); err != nil {
		t.Fatal(err)
	}
	if rep := w.drop(g); rep.Status != review.Rejected || !strings.Contains(rep.Errors[0].Message, "no longer exists") {
		t.Errorf("report %+v", rep)
	}
}

func TestChooseValidatesACurrentVersionNeverSeen(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, goodCSV(4)) // its event never came
	cs := w.choose(cat, res)
	if len(cs) != 1 || !cs[0].Ready || cs[0].VersionID != o.VersionID || cs[0].Rows != 4 || cs[0].Fallback {
		t.Fatalf("choice %+v", cs)
	}
	if rep := w.report(routeKey); rep.Status != review.Ready || rep.VersionID != o.VersionID {
		t.Errorf("report %+v", rep)
	}
	// The late event then changes nothing.
	gets := w.count.gets.Load()
	w.drop(o)
	if n := w.count.gets.Load() - gets; n != 0 {
		t.Errorf("%d reads for the late event", n)
	}
}

func TestListIsOneRequestAndGroupsByResource(t *testing.T) {
	w := newWorld(t)
	w.put(routeKey, goodCSV(1))
	w.put("standing/"+cat+"/"+res+"/more.csv", goodCSV(1))
	w.put("standing/"+cat+"/"+res2+"/a.csv", goodCSV(1))
	w.put("standing/badges/old/a.csv", goodCSV(1))
	w.put("incoming/x.csv", goodCSV(1))
	inv, err := w.st.List(w.ctx, w.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.count.lists.Load(); n != 1 {
		t.Errorf("%d LIST requests, want 1", n)
	}
	if got := inv.Catalogs(); len(got) != 1 || got[0] != cat {
		t.Errorf("catalogs %v", got)
	}
	files := inv.Files(cat, strings.ToUpper(res))
	if len(files) != 2 || files[0].Key != "standing/"+cat+"/"+res+"/more.csv" || files[1].Key != routeKey || files[1].Parsed.Route != "badges" {
		t.Errorf("files %+v", files)
	}
	if !inv.HasData(cat, res2) || inv.HasData(res2, cat) {
		t.Error("HasData")
	}
	if len(inv.Refused) != 1 || inv.Refused[0].Key != "standing/badges/old/a.csv" {
		t.Errorf("refused %+v", inv.Refused)
	}
}

func TestListFollowsPages(t *testing.T) {
	w := newWorld(t)
	for i := range 3 {
		w.put(fmt.Sprintf("standing/badges/f%d.csv", i), goodCSV(1))
	}
	paged := &pagingS3{countingS3: w.count}
	st := New(Config{S3: paged, Ledger: w.led, Routes: routes, Log: quiet})
	inv, err := st.List(w.ctx, w.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(inv.Files(cat, res)); n != 3 || w.count.lists.Load() != 3 {
		t.Errorf("%d files in %d requests, want 3 in 3", n, w.count.lists.Load())
	}
}

// pagingS3 asks for pages of one key.
type pagingS3 struct{ *countingS3 }

func (p *pagingS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	in.MaxKeys = aws.Int32(1)
	return p.countingS3.ListObjectsV2(ctx, in, opts...)
}

func TestUnversionedBucket(t *testing.T) {
	srv := testenv.SharedS3(t)
	w := newWorld(t)
	w.bucket = srv.NewBucket(t, false)
	w.store.Store = &blob.S3{Client: w.s3, Bucket: w.bucket}
	o := w.put(routeKey, goodCSV(2))
	if o.VersionID != "" && o.VersionID != "null" {
		t.Skipf("the server gave a version id %q in an unversioned bucket", o.VersionID)
	}
	o.VersionID = ""
	if rep := w.drop(o); rep.Status != review.Ready || rep.ETag == "" {
		t.Fatalf("report %+v", rep)
	}
	cs := w.choose(cat, res)
	if len(cs) != 1 || !cs[0].Ready || cs[0].ETag != strings.Trim(o.ETag, `"`) {
		t.Fatalf("choice %+v", cs)
	}
	if got := w.read(routeKey, cs[0]); !bytes.Equal(got, goodCSV(2)) {
		t.Errorf("read %q", got)
	}
}

func TestChooseOfValidatedFilesReadsOnlyRecords(t *testing.T) {
	w := newWorld(t)
	w.drop(w.put(routeKey, goodCSV(2)))
	w.drop(w.put("standing/"+cat+"/"+res+"/b.csv", badCSV()))
	inv, err := w.st.List(w.ctx, w.bucket)
	if err != nil {
		t.Fatal(err)
	}
	gets, lists, vlists := w.count.gets.Load(), w.count.lists.Load(), w.count.versionLists.Load()
	cs, err := w.st.Choose(w.ctx, inv, cat, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Ready || !cs[1].Ready {
		t.Fatalf("choices %+v", cs)
	}
	if g, l, v := w.count.gets.Load()-gets, w.count.lists.Load()-lists, w.count.versionLists.Load()-vlists; g != 0 || l != 0 || v != 0 {
		t.Errorf("Choose made %d object reads, %d lists and %d version lists; want none", g, l, v)
	}
	if cs, err := w.st.Choose(w.ctx, inv, cat, res2); err != nil || len(cs) != 0 {
		t.Errorf("a resource without data: %+v %v", cs, err)
	}
}

func TestChooseWhenTheFileChangesWhileItIsRead(t *testing.T) {
	w := newWorld(t)
	v1 := w.put(routeKey, goodCSV(2))
	w.drop(v1)
	w.put(routeKey, goodCSV(3)) // its event is late
	inv, err := w.st.List(w.ctx, w.bucket)
	if err != nil {
		t.Fatal(err)
	}
	w.put(routeKey, goodCSV(4)) // replaced after the listing
	cs, err := w.st.Choose(w.ctx, inv, cat, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || !cs[0].Ready || cs[0].VersionID != v1.VersionID || !cs[0].Fallback || !strings.Contains(cs[0].Reason, "changed") {
		t.Fatalf("choice %+v, want v1 as a fallback", cs)
	}
}

func TestChooseStillChoosesWhenItsReportCannotBeWritten(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, goodCSV(2)) // its event never came
	w.store.failNext("reports/", 1)
	cs := w.choose(cat, res)
	if len(cs) != 1 || !cs[0].Ready || cs[0].VersionID != o.VersionID {
		t.Fatalf("choice %+v", cs)
	}
	if _, err := w.led.Report(w.ctx, routeKey); !blob.IsNotFound(err) {
		t.Fatalf("report: %v", err)
	}
	// The late event writes it, without reading the object again.
	gets := w.count.gets.Load()
	if rep := w.drop(o); rep.Status != review.Ready {
		t.Errorf("report %+v", rep)
	}
	if n := w.count.gets.Load() - gets; n != 0 {
		t.Errorf("%d object reads", n)
	}
}

// FuzzRecordDocument decodes arbitrary bytes as a standing record (a
// document anyone with write access to the state prefix could change) and
// merges a version into it and reports from it: never a panic, and never a
// ready report that names a fallback.
func FuzzRecordDocument(f *testing.F) {
	f.Add([]byte(`{"schema":1,"key":"standing/badges/access.csv","versions":[]}`))
	f.Add([]byte(`{"schema":1,"key":"standing/badges/access.csv","versions":[{"versionId":"x","etag":"e","status":"ready","position":-3}]}`))
	f.Add([]byte(`{"key":"standing/other.csv"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec Record
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		rec.add(Version{VersionID: "new", ETag: "n", Status: review.Rejected, Position: 2})
		if v, i := rec.newest(); v == nil || i < 0 {
			t.Fatal("no newest version after an add")
		}
		p := dropkey.Standing{CatalogID: cat, ResourceID: res, Folder: "standing/badges/", File: "access.csv"}
		rep := reportOf(&rec, p, time.Time{})
		if rep.Status == review.Ready && rep.FallbackVersionID != "" {
			t.Fatalf("a ready report with a fallback: %+v", rep)
		}
	})
}

func TestARecordThatIsNotOursIsNotOverwritten(t *testing.T) {
	w := newWorld(t)
	o := w.put(routeKey, goodCSV(1))
	for _, doc := range []string{`{"schema":1,"key":"standing/other.csv","versions":[]}`, `not json`} {
		if _, err := w.store.Put(w.ctx, w.st.RecordKey(routeKey), []byte(doc)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.st.Drop(w.ctx, o); err == nil || review.KindOf(err) != review.Internal {
			t.Errorf("%s: Drop error %v, want an internal one", doc, err)
		}
		obj, err := w.store.Get(w.ctx, w.st.RecordKey(routeKey))
		if err != nil || string(obj.Data) != doc {
			t.Errorf("record changed to %q (%v)", obj.Data, err)
		}
	}
}
