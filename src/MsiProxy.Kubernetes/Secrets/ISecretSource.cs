using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;

namespace MsiProxy.Kubernetes.Secrets;

/// <summary>Reads an identity header from a Secret and hands back only its digest: the value never leaves the source.</summary>
internal interface ISecretSource
{
    Task<IdentityHeaderRead> ReadAsync(SecretReference reference, CancellationToken cancellationToken);
}

/// <summary>
/// The digest of the value at a Secret's key, or why there is none (<see cref="Problem"/>: names and status codes only,
/// never anything read from the Secret).
/// </summary>
internal sealed record IdentityHeaderRead(IdentityHeaderDigest? Digest, string? Problem)
{
    public static IdentityHeaderRead Of(IdentityHeaderDigest digest) => new(digest, null);

    public static IdentityHeaderRead Failed(string problem) => new(null, problem);
}
