package quiclink

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ProofOID is the X.509 extension that carries the node's identity proof
// (its signed contact card, opaque to this package) in the self-signed link
// certificate: 1.3.6.1.4.1.59871.1.1 ("Tern link proof"). The arc under
// 1.3.6.1.4.1 (IANA private enterprises) is not registered to Tern; it is
// only ever read by Tern nodes. The extension is non-critical and its
// extnValue holds the proof bytes as they are.
var ProofOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59871, 1, 1}

// maxProof bounds the proof we accept from a peer's certificate.
const maxProof = 16 << 10

// makeCertificate builds the self-signed certificate for key with proof in
// the ProofOID extension. Validity dates are wide and never checked: a
// Raspberry Pi without a clock must still be able to connect.
func makeCertificate(key ed25519.PrivateKey, proof []byte) (tls.Certificate, error) {
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("quiclink: Config.Key has %d bytes, want an ed25519.PrivateKey of %d", len(key), ed25519.PrivateKeySize)
	}
	if len(proof) == 0 || len(proof) > maxProof {
		return tls.Certificate{}, fmt.Errorf("quiclink: Config.Proof has %d bytes, want 1..%d (the node's signed contact card)", len(proof), maxProof)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quiclink: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tern node"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: ProofOID, Value: proof}},
	}
	pub := key.Public()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quiclink: self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// verifyChain checks a peer's certificate list the Tern way: exactly one
// self-signed Ed25519 certificate with a proof extension that verify
// accepts. TLS 1.3 CertificateVerify has already proved the peer holds the
// key. It returns the peer's node address.
func verifyChain(rawCerts [][]byte, verify func(ed25519.PublicKey, []byte) ([16]byte, error)) ([16]byte, error) {
	if len(rawCerts) != 1 {
		return [16]byte{}, fmt.Errorf("peer sent %d certificates, want exactly one self-signed Tern certificate", len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return [16]byte{}, fmt.Errorf("peer certificate does not parse: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return [16]byte{}, fmt.Errorf("peer certificate key is %T, want Ed25519: not a Tern node", cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return [16]byte{}, fmt.Errorf("peer certificate is not self-signed by its key: %w", err)
	}
	var proof []byte
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(ProofOID) {
			proof = ext.Value
		}
	}
	if proof == nil {
		return [16]byte{}, errors.New("peer certificate has no Tern proof extension (OID 1.3.6.1.4.1.59871.1.1): not a Tern node")
	}
	if len(proof) > maxProof {
		return [16]byte{}, fmt.Errorf("peer proof has %d bytes, above %d", len(proof), maxProof)
	}
	addr, err := verify(pub, proof)
	if err != nil {
		return [16]byte{}, fmt.Errorf("peer identity proof rejected: %w", err)
	}
	return addr, nil
}
