using System.Net;
using System.Text;
using MsiProxy.Clients;
using MsiProxy.Kubernetes.Api;
using MsiProxy.Kubernetes.Bindings;

namespace MsiProxy.Kubernetes.Secrets;

/// <summary>
/// <c>GET /api/v1/namespaces/{namespace}/secrets/{name}</c> with the connection (and so the credentials) the pod source uses.
/// A single get per Secret a binding names: the chart's Role grants <c>get</c> on exactly those names, and nothing that
/// lists or watches Secrets.
/// </summary>
internal sealed class KubernetesSecretSource(KubernetesApi api) : ISecretSource
{
    public async Task<IdentityHeaderRead> ReadAsync(SecretReference reference, CancellationToken cancellationToken)
    {
        ApiSecret secret;
        try
        {
            secret = await api.ReadSecretAsync(reference.Namespace, reference.Name, cancellationToken).ConfigureAwait(false);
        }
        catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            return IdentityHeaderRead.Failed($"Secret {reference.Namespace}/{reference.Name} does not exist");
        }
        catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.Forbidden)
        {
            return IdentityHeaderRead.Failed($"the proxy may not get Secret {reference.Namespace}/{reference.Name} "
                + "(RBAC: the chart grants get on the Secrets of kubernetes.bindings and kubernetes.identityHeaderSecrets only)");
        }
        catch (KubernetesApiException ex)
        {
            return IdentityHeaderRead.Failed($"the API server answered HTTP {(int?)ex.Status} for Secret {reference.Namespace}/{reference.Name}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Only the kind of failure: a body that could not be read may be the Secret itself.
            var detail = ex is HttpRequestException or IOException ? ex.Message : ex.GetType().Name;
            return IdentityHeaderRead.Failed($"could not read Secret {reference.Namespace}/{reference.Name}: {detail}");
        }

        try
        {
            if (secret.Data?.TryGetValue(reference.Key, out var bytes) != true || bytes is null)
            {
                return IdentityHeaderRead.Failed($"Secret {reference.Namespace}/{reference.Name} has no key {reference.Key}");
            }

            // An empty header is no header: the gate refuses it before any look-up, so such a pod could never be served.
            return bytes.Length == 0
                ? IdentityHeaderRead.Failed($"key {reference.Key} of Secret {reference.Namespace}/{reference.Name} is empty")
                : IdentityHeaderRead.Of(IdentityHeaderDigest.Of(Encoding.UTF8.GetString(bytes)));
        }
        finally
        {
            // Keep no copy of any of the Secret's values longer than the hashing needs.
            foreach (var value in secret.Data?.Values ?? Enumerable.Empty<byte[]?>())
            {
                if (value is not null)
                {
                    Array.Clear(value);
                }
            }
        }
    }
}
