using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace MsiProxy.Clients;

/// <summary>
/// What a client must show to be served, beyond knowing where to call. See docs/proof-of-caller.md for the threat each
/// one stops.
/// </summary>
public enum ProofPolicy
{
    /// <summary>The TCP source address is the proof (both protocols). A neighbour that can spoof the address is the client.</summary>
    Address,

    /// <summary>
    /// The source address and the client's identity header, on the App Service endpoint only; its IMDS-path requests are
    /// refused, because the IMDS protocol carries no secret.
    /// </summary>
    AddressAndSecret,

    /// <summary>
    /// The identity header alone, from anywhere within the client's address range: for hosts where traffic to
    /// 169.254.169.254 cannot be intercepted (Windows Kubernetes nodes), so callers reach the proxy at its node address.
    /// </summary>
    Secret,
}

public static class ProofPolicies
{
    public const string AddressName = "address";
    public const string AddressAndSecretName = "address+secret";
    public const string SecretName = "secret";

    public static string Names => $"{AddressName}, {AddressAndSecretName}, {SecretName}";

    public static bool TryParse(string? text, out ProofPolicy policy)
    {
        policy = ProofPolicy.Address;
        switch (text?.Trim().ToLowerInvariant())
        {
            case null or "" or AddressName:
                return true;
            case AddressAndSecretName:
                policy = ProofPolicy.AddressAndSecret;
                return true;
            case SecretName:
                policy = ProofPolicy.Secret;
                return true;
            default:
                return false;
        }
    }

    public static string Name(this ProofPolicy policy) => policy switch
    {
        ProofPolicy.AddressAndSecret => AddressAndSecretName,
        ProofPolicy.Secret => SecretName,
        _ => AddressName,
    };

    /// <summary>
    /// Reads a client's policy and digest as configuration and the admin API give them (<c>Proof</c>,
    /// <c>IdentityHeaderSha256</c>); <paramref name="error"/> names the field. A digest without a policy that uses it is
    /// refused too: it would suggest a protection that is not there.
    /// </summary>
    public static bool TryRead(string? proofText, string? sha256Text, out ProofPolicy proof, out IdentityHeaderDigest? digest, out string error)
    {
        digest = null;
        error = "";
        if (!TryParse(proofText, out proof))
        {
            error = $"proof: '{proofText}' is not a proof policy ({Names})";
            return false;
        }

        if (!string.IsNullOrWhiteSpace(sha256Text) && !IdentityHeaderDigest.TryParse(sha256Text, out digest))
        {
            error = "identityHeaderSha256: must be 64 hex digits, the SHA-256 of the identity header";
            return false;
        }

        if (proof.NeedsSecret() != digest is not null)
        {
            error = proof.NeedsSecret()
                ? $"identityHeaderSha256: required by proof '{proof.Name()}'"
                : $"proof: '{AddressName}' does not use identityHeaderSha256; use '{AddressAndSecretName}' or '{SecretName}'";
            return false;
        }

        return true;
    }

    /// <summary>True when the policy asks for the identity header, so the client must have a digest of it.</summary>
    public static bool NeedsSecret(this ProofPolicy policy) => policy != ProofPolicy.Address;
}

/// <summary>
/// The SHA-256 of a client's identity header (the App Service protocol's <c>X-IDENTITY-HEADER</c>, the container's
/// <c>IDENTITY_HEADER</c>). The proxy keeps only this digest, never the secret; a presented header is hashed and the
/// digests compared in constant time. The digest is not shown by the admin API or written to logs either.
/// </summary>
public sealed class IdentityHeaderDigest : IEquatable<IdentityHeaderDigest>
{
    private readonly byte[] _sha256;

    private IdentityHeaderDigest(byte[] sha256) => _sha256 = sha256;

    /// <summary>The digest in hex: the registry indexes by it and the standalone monitor sends it to the admin API. Never logged or shown.</summary>
    public string Hex => Convert.ToHexStringLower(_sha256);

    public static IdentityHeaderDigest Of(string secret) => new(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Reads 64 hex digits (what operators put in <c>IdentityHeaderSha256</c>: <c>printf %s "$secret" | sha256sum</c>).</summary>
    public static bool TryParse(string? hex, [NotNullWhen(true)] out IdentityHeaderDigest? digest)
    {
        digest = null;
        hex = hex?.Trim();
        if (hex is not { Length: 64 } || !hex.All(Uri.IsHexDigit))
        {
            return false;
        }

        digest = new IdentityHeaderDigest(Convert.FromHexString(hex));
        return true;
    }

    /// <summary>True when <paramref name="presented"/> is the secret this is the digest of; constant time in the digest.</summary>
    public bool Matches(string presented) => CryptographicOperations.FixedTimeEquals(_sha256, SHA256.HashData(Encoding.UTF8.GetBytes(presented)));

    public bool Equals(IdentityHeaderDigest? other) => other is not null && CryptographicOperations.FixedTimeEquals(_sha256, other._sha256);

    public override bool Equals(object? obj) => Equals(obj as IdentityHeaderDigest);

    public override int GetHashCode() => BitConverter.ToInt32(_sha256, 0);

    /// <summary>Never the digest: this is what logs and views may show.</summary>
    public override string ToString() => "sha256:…";
}
