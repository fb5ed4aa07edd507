using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MsiProxy.Configuration;

namespace MsiProxy.Kubernetes.Api;

/// <summary>
/// Where the API server is and how the proxy proves who it is: in a pod, the service account's token and the cluster's
/// CA (the API server's certificate must chain to that CA and name the address); or an explicit
/// <c>MsiProxy:Kubernetes:ApiServer</c> (e.g. <c>kubectl proxy</c> on loopback), which adds no credentials.
/// </summary>
internal sealed class KubernetesConnection
{
    /// <summary>Where the kubelet mounts the service account (token, ca.crt, namespace).</summary>
    public const string ServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";

    private readonly string? _tokenFile;
    private readonly X509Certificate2Collection? _clusterCa;

    private KubernetesConnection(Uri server, string? tokenFile, X509Certificate2Collection? clusterCa)
    {
        Server = server;
        _tokenFile = tokenFile;
        _clusterCa = clusterCa;
    }

    public Uri Server { get; }

    /// <param name="server">The API server's URL; a path in it (a proxy's prefix) is kept.</param>
    public static KubernetesConnection Direct(Uri server) =>
        new(server.AbsoluteUri.EndsWith('/') ? server : new Uri(server.AbsoluteUri + "/"), tokenFile: null, clusterCa: null);

    /// <summary>The in-cluster connection, as the kubelet sets a pod up: <c>KUBERNETES_SERVICE_HOST</c>/<c>_PORT</c> and the mounted service account.</summary>
    /// <exception cref="ConfigurationException">Not in a pod: no service host, token or CA.</exception>
    public static KubernetesConnection InCluster(string? host, string? port, string serviceAccountDirectory = ServiceAccountDirectory)
    {
        var token = Path.Combine(serviceAccountDirectory, "token");
        var ca = Path.Combine(serviceAccountDirectory, "ca.crt");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port) || !File.Exists(token) || !File.Exists(ca))
        {
            throw new ConfigurationException(
                "MsiProxy:Kubernetes:Enabled is true but there is no in-cluster configuration (service account token and "
                + "KUBERNETES_SERVICE_HOST); run the proxy in a pod or set MsiProxy:Kubernetes:ApiServer");
        }

        var bundle = new X509Certificate2Collection();
        bundle.ImportFromPemFile(ca);
        if (bundle.Count == 0)
        {
            throw new ConfigurationException($"{ca} holds no certificate: the API server's certificate cannot be checked");
        }

        var address = host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]" : host; // IPv6
        return new KubernetesConnection(new Uri($"https://{address}:{port}/"), token, bundle);
    }

    /// <summary>The handler every call goes through: the cluster CA as the only root, when there is one.</summary>
    public SocketsHttpHandler CreateHandler()
    {
        // No redirects: the API server never sends one, and following it would take the token's request somewhere else.
        var handler = new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1), AllowAutoRedirect = false };
        if (_clusterCa is { } roots)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => ChainsToClusterCa(certificate, errors, roots);
        }

        return handler;
    }

    /// <summary>
    /// The token, read at each call: the kubelet rotates a projected token (hourly, and the API server refuses it a
    /// while after), so a copy read at start-up would stop working.
    /// </summary>
    public async ValueTask<AuthenticationHeaderValue?> AuthorizationAsync(CancellationToken cancellationToken)
    {
        if (_tokenFile is null)
        {
            return null;
        }

        var token = (await File.ReadAllTextAsync(_tokenFile, cancellationToken).ConfigureAwait(false)).Trim();
        return new AuthenticationHeaderValue("Bearer", token);
    }

    private static bool ChainsToClusterCa(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        // The name must match and a certificate must be there; only trust is decided here, against the cluster CA alone.
        if (certificate is not X509Certificate2 presented || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // cluster CAs publish no revocation lists
        return chain.Build(presented);
    }
}
