package csvcheck

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

const v1Header = "principalId,principalType,permissionId,permissionName,permissionDescription,permissionType\n"

func v1Row(desc string) string {
	return "6e7b768e-07e2-4810-8459-485f84f8f204,user,door-17,Door 17," + desc + ",Badge\n"
}

// TestLimits covers the inputs too big to keep as corpus files.
func TestLimits(t *testing.T) {
	quotes := func(n int) string { return `"` + strings.Repeat(`""`, n) + `"` }
	var longHeader strings.Builder
	for i := range 20 {
		if i > 0 {
			longHeader.WriteByte(',')
		}
		longHeader.WriteString(strings.Repeat(string(rune('a'+i)), 60<<10))
	}
	for _, tc := range []struct {
		name string
		data string
		want expectation
	}{
		{"field at the limit", v1Header + v1Row(strings.Repeat("x", MaxFieldBytes)),
			expectation{OK: true, Format: "v1.0", Rows: 1}},
		{"field over the limit", v1Header + v1Row(strings.Repeat("x", MaxFieldBytes+1)),
			expectation{Line: 2, Column: "permissionDescription", Contains: "field longer than 65536 bytes"}},
		{"doubled quotes count once", v1Header + v1Row(quotes(MaxFieldBytes)),
			expectation{OK: true, Format: "v1.0", Rows: 1}},
		{"doubled quotes over the limit", v1Header + v1Row(quotes(MaxFieldBytes+1)),
			expectation{Line: 2, Column: "permissionDescription", Contains: "field longer than 65536 bytes"}},
		{"field over the limit in the header", strings.Repeat("h", MaxFieldBytes+1) + "\n",
			expectation{Line: 1, Contains: "field longer than 65536 bytes"}},
		{"record over the limit", longHeader.String() + "\n",
			expectation{Line: 1, Contains: "record longer than 1048576 bytes"}},
		{"a million fields in a row", v1Header + strings.TrimSuffix(v1Row("x"), "\n") + strings.Repeat(",", 1<<20) + "\n",
			expectation{Line: 2, Contains: "more than 6 fields; the header has 6 columns"}},
		{"a million columns in the header", strings.Repeat("a,", 1<<20) + "\n",
			expectation{Line: 1, Contains: "the header has more than 64 columns"}},
		{"many rows", v1Header + strings.Repeat(v1Row("Main entrance"), 100000),
			expectation{OK: true, Format: "v1.0", Rows: 100000}},
		{"an error after many rows", v1Header + strings.Repeat(v1Row("Main entrance"), 100000) + v1Row("=1+2"),
			expectation{Line: 100002, Column: "permissionDescription", Contains: `looks like a spreadsheet formula (starts with '='): "=1+2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.data)
			res, err := Validate(bytes.NewReader(data), "big.csv")
			checkOutcome(t, tc.want, res, err)
			// The same outcome when the bytes trickle in: one at a time, or
			// for the largest inputs in odd-sized reads.
			var src io.Reader = iotest.OneByteReader(bytes.NewReader(data))
			if len(data) > 256<<10 {
				src = &chunkReader{data: data, size: 4093}
			}
			res, err = Validate(src, "big.csv")
			checkOutcome(t, tc.want, res, err)
		})
	}
}

func TestScratchStaysWithinTheFieldLimit(t *testing.T) {
	// A checked column as long as allowed, arriving a byte at a time, is the
	// worst case for the copy of a value that spans reads.
	list := `"` + strings.Repeat("6e7b768e-07e2-4810-8459-485f84f8f204, ", (MaxFieldBytes-36)/38) + `6e7b768e-07e2-4810-8459-485f84f8f204"`
	data := "PrincipalAADId,ResourceId,ResourceName,ResourceDescription,ResourceType,PermissionId,PermissionName,PermissionDescription,PermissionType,ResourceOwners\n" +
		"adele@contoso.com,r,R,,T,p,P,,T," + list + "\n"
	r := NewReader(iotest.OneByteReader(strings.NewReader(data)), "owners.csv")
	if _, err := readAllWith(r, 1); err != nil {
		t.Fatal(err)
	}
	if c := cap(r.v.scratch); c > 2*MaxFieldBytes {
		t.Fatalf("scratch grew to %d bytes", c)
	}
}
