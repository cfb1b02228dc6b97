package csvcheck

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// fieldShapes are values of every kind, good and bad, in the shapes the
// record fast path takes and in those it must leave to the state machine.
var fieldShapes = map[kind][]string{
	kindGUID: {
		"6e7b768e-07e2-4810-8459-485f84f8f204", "6E7B768E-07E2-4810-8459-485F84F8F204",
		`"6e7b768e-07e2-4810-8459-485f84f8f204"`, "6e7b768e-07e2-4810-8459-485f84f8f20",
		"6e7b768e-07e2-4810-8459-485f84f8f2044", "{6e7b768e-07e2-4810-8459-485f84f8f204}",
		" 6e7b768e-07e2-4810-8459-485f84f8f204", "6e7b768e-07e2-4810-8459-485f84f8f2\xe94",
		"6e7b768e-07e2-4810-8459-485f84f8f2g4", "6e7b768e07e2-4810-8459-485f84f8f204x", "",
		// a wrong byte where each dash should be
		"6e7b768e_07e2-4810-8459-485f84f8f204", "6e7b768e-07e2a4810-8459-485f84f8f204",
		"6e7b768e-07e2-4810.8459-485f84f8f204", "6e7b768e-07e2-4810-8459\x80485f84f8f204",
	},
	kindGUIDList: {
		"", `""`, "6e7b768e-07e2-4810-8459-485f84f8f204",
		`"6e7b768e-07e2-4810-8459-485f84f8f204, d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77"`,
		`"6e7b768e-07e2-4810-8459-485f84f8f204,d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77"`,
		"\" 6e7b768e-07e2-4810-8459-485f84f8f204\t,  d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77 \"",
		`"6e7b768e-07e2-4810-8459-485f84f8f204,,d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77"`,
		`"6e7b768e-07e2-4810-8459-485f84f8f204, "`, `"6e7b768e-07e2-4810-8459-485f84f8f204;d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77"`,
		`"6e7b768e-07e2-4810-8459-485f84f8f204"""`, `"6e7b768e-07e2-4810-8459-485f84f8f204" `,
		"\"6e7b768e-07e2-4810-8459-485f84f8f204,\nd0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77\"",
		" 6e7b768e-07e2-4810-8459-485f84f8f204 ", "6e7b768e-07e2-4810-8459-485f84f8f204x", " ",
		`"6e7b768e-07e2-4810-8459-485f84f8f204, d0c9f5b5-2f4a-4b8e-9a51_3c1b8f0e2a77"`,
		`"6e7b768e-07e2-4810-8459-485f84f8f204, d0c9f5b5-2f4a-4b8e-9a5103c1b8f0e2a77"`,
	},
	kindGUIDOrUPN: {
		"adele.vance@contoso.com", "6e7b768e-07e2-4810-8459-485f84f8f204", "adele@contoso",
		"a@b@c.com", `"adele.vance@contoso.com"`, "adele vance@contoso.com", "",
	},
	kindEntraType: {
		"EntraIdUser", "entraiduser", "ENTRAIDUSER", `"EntraIdUser"`, "EntraIdUſer", "EntraIdUsers",
		"EntraIdUse", "EntraId User", "EntraIdUser ", "user", "", "Entra\x00dUser",
	},
	kindUserType: {"user", "USER", "EntraIdUser", "entraiduser", "group", `"user"`, ""},
	kindText: {
		"door-17", "Door 17", "Badge", "-", "+", "=", "a", "", "=1+2", "-x", "+1", "@SUM(A1)",
		`"Entrance 17, ground floor"`, `"a ""quoted"" word"`, `""""`, `"""a"`, `"=1"`, `"-"`, `""`,
		"\"two\nlines\"", "\"two\r\nlines\"", "\"a\rb\"", "tab\there", "caf\u00e9", "\u65e5\u672c\u8a9e",
		"\"caf\u00e9, na\u00efve\"", "caf\xe9", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "a\x00b",
		"\"a\x00b\"", "a\rb", `a"b`, `"a"b`, `"a`, "\x01ctl", "exactly8", "exactly9!",
		strings.Repeat("long text ", 12), `"` + strings.Repeat("long, quoted ", 10) + `"`,
	},
}

// goodShapes are values each kind accepts, in shapes the fast path takes
// and shapes it leaves to the state machine.
var goodShapes = map[kind][]string{
	kindGUID: {"6e7b768e-07e2-4810-8459-485f84f8f204", "6E7B768E-07E2-4810-8459-485F84F8F204",
		`"6e7b768e-07e2-4810-8459-485f84f8f204"`},
	kindGUIDList: {"", `""`, "6e7b768e-07e2-4810-8459-485f84f8f204",
		`"6e7b768e-07e2-4810-8459-485f84f8f204, d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77"`,
		"\" 6e7b768e-07e2-4810-8459-485f84f8f204\t,  d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77 \"",
		" 6e7b768e-07e2-4810-8459-485f84f8f204 "},
	kindGUIDOrUPN: {"adele.vance@contoso.com", "6e7b768e-07e2-4810-8459-485f84f8f204", `"o'neil@contoso.co.uk"`},
	kindEntraType: {"EntraIdUser", "entraiduser", `"EntraIdUser"`, "EntraIdUſer"},
	kindUserType:  {"user", "USER", "EntraIdUser", `"user"`},
	kindText: {"door-17", "Door 17", "Badge", "-", "+", "a", `"Entrance 17, ground floor"`,
		`"a ""quoted"" word"`, `""""`, "\"two\nlines\"", "\"two\r\nlines\"", "\"a\rb\"", "tab\there",
		"caf\u00e9", "\"caf\u00e9, na\u00efve\"", "\x01ctl", "exactly8", "exactly9!",
		strings.Repeat("long text ", 12), `"` + strings.Repeat("long, quoted ", 10) + `"`},
}

func init() {
	fieldShapes[kindOptText] = fieldShapes[kindText]
	goodShapes[kindOptText] = append(goodShapes[kindText], "", `""`)
}

// randomFile builds a file of format f: its header, then a few records,
// every field good in half of the files; in the others, fields of their
// column's kind, good or bad, sometimes of another kind, and now and then
// one field too many or too few. Line ends are LF or CRLF, and the last
// may be missing.
func randomFile(rng *rand.Rand, f *Format) []byte {
	var b bytes.Buffer
	b.WriteString(strings.Join(f.Columns, ","))
	b.WriteString("\n")
	records := 1 + rng.IntN(6)
	good := rng.IntN(2) == 0
	for r := range records {
		n := len(f.Columns)
		if !good && rng.IntN(20) == 0 {
			n += rng.IntN(3) - 1
		}
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			k := kindText
			if i < len(f.kinds) {
				k = f.kinds[i]
			}
			switch {
			case good || rng.IntN(3) == 0:
				shapes := goodShapes[k]
				b.WriteString(shapes[rng.IntN(len(shapes))])
			case rng.IntN(10) == 0:
				shapes := fieldShapes[kind(rng.IntN(int(kindUserType)+1))]
				b.WriteString(shapes[rng.IntN(len(shapes))])
			default:
				shapes := fieldShapes[k]
				b.WriteString(shapes[rng.IntN(len(shapes))])
			}
		}
		if r < records-1 || rng.IntN(4) > 0 {
			if rng.IntN(3) == 0 {
				b.WriteString("\r\n")
			} else {
				b.WriteString("\n")
			}
		}
	}
	return b.Bytes()
}

func TestFastPathAgreesWithTheStateMachine(t *testing.T) {
	// The state machine alone reads a file a byte at a time: no record is
	// ever whole in a chunk. Reading the file in one piece, or in pieces
	// of any size, must give exactly the same result and error.
	rng := rand.New(rand.NewPCG(1, 2))
	valid := 0
	for n := range 6000 {
		f := &Formats[n%len(Formats)]
		data := randomFile(rng, f)
		want, werr := Validate(iotest.OneByteReader(bytes.NewReader(data)), "f.csv")
		if werr == nil {
			valid++
		}
		for _, src := range []*chunkReader{{data: data, size: len(data)}, {data: data, size: 1 + rng.IntN(200)}} {
			size := src.size
			got, err := Validate(src, "f.csv")
			// Bytes counts what was read, which after an error depends on
			// the read sizes.
			if !sameError(err, werr) || got.Format != want.Format || got.Rows != want.Rows || werr == nil && got.Bytes != want.Bytes {
				t.Fatalf("%q in reads of %d:\ngot  %s, %v\nwant %s, %v", data, size, describeResult(got), err, describeResult(want), werr)
			}
		}
	}
	if valid < 600 {
		t.Fatalf("only %d of the random files are valid; the test proves little", valid)
	}
}

func TestFastPathTakesTheCommonShapes(t *testing.T) {
	// Each of these records must be taken whole by fastRecord: if a change
	// made it give up on them the state machine would still be right,
	// only slower, and no other test would notice.
	for _, tc := range []struct {
		header, record string
	}{
		{entraHeader, string(appendEntraRow(nil, 7))},
		{entraHeader, "6e7b768e-07e2-4810-8459-485f84f8f204,entraiduser,door-1,Door 1,,Badge,s,S,,,\r\n"},
		{entraHeader, "6e7b768e-07e2-4810-8459-485f84f8f204,EntraIdUser,\"a, b\",-,x,y,z,w,\"\",6e7b768e-07e2-4810-8459-485f84f8f204,\n"},
		{v1Header, v1Row("Main entrance")},
		{v1Header, "6e7b768e-07e2-4810-8459-485f84f8f204,user,door\t17,caf\u00e9,\"two\nlines\",\"a \"\"b\"\"\"\n"},
		{"PrincipalAADId,ResourceId,ResourceName,ResourceDescription,ResourceType,PermissionId,PermissionName,PermissionDescription,PermissionType,ResourceOwners\n",
			"adele.vance@contoso.com,badge,Badge system,Door badges,PhysicalAccess,door-17,Door 17,Main entrance,Badge,\"6e7b768e-07e2-4810-8459-485f84f8f204, d0c9f5b5-2f4a-4b8e-9a51-3c1b8f0e2a77\"\n"},
	} {
		var v validator
		v.init("f.csv")
		if err := v.write([]byte(tc.header)); err != nil {
			t.Fatal(err)
		}
		// Padding after the record, as the next record would be: the
		// fast path needs a few bytes after a field to test it a word
		// at a time.
		b := []byte(tc.record + "more bytes after the record")
		if end, _ := fastRecord(b, 0, v.cols); end != len(tc.record) {
			t.Errorf("fastRecord(%q) = %d, want %d", tc.record, end, len(tc.record))
		}
	}
}

func TestIsGUIDListMatchesCheckList(t *testing.T) {
	var v validator
	v.init("f.csv")
	v.names = []string{"owners"}
	v.cols = []column{newColumn(kindGUIDList)}
	rng := rand.New(rand.NewPCG(3, 4))
	parts := []string{"6e7b768e-07e2-4810-8459-485f84f8f204", "D0C9F5B5-2F4A-4B8E-9A51-3C1B8F0E2A77",
		",", ",", " ", "\t", "x", ";", "6e7b768e-07e2-4810-8459-485f84f8f20", "\n"}
	for range 20000 {
		var b []byte
		for range 1 + rng.IntN(7) {
			b = append(b, parts[rng.IntN(len(parts))]...)
		}
		if got, want := isGUIDList(b), v.checkList(b) == nil; got != want {
			t.Fatalf("isGUIDList(%q) = %v, checkList accepts it: %v", b, got, want)
		}
	}
}

func TestFormulaStartTableMatchesIsFormulaStart(t *testing.T) {
	for c := range 256 {
		if formulaStart[c] != isFormulaStart(byte(c)) {
			t.Fatalf("formulaStart[%#x] = %v, isFormulaStart says %v", c, formulaStart[c], isFormulaStart(byte(c)))
		}
	}
}
