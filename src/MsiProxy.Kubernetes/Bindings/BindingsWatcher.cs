using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Kubernetes.Bindings;

/// <summary>
/// Loads the admin's bindings file at start-up and polls it for changes. Polling by content (not a file watcher) because a
/// ConfigMap volume updates by swapping the <c>..data</c> symlink, which file watchers on the key's own path do not report.
/// An invalid edit keeps the last good bindings (and says so); a missing file means no pod gets any identity.
/// </summary>
internal sealed class BindingsWatcher(PodRegistrations registrations, IOptions<MsiProxyOptions> options, TimeProvider time,
    ILogger<BindingsWatcher> logger) : BackgroundService
{
    private readonly KubernetesOptions _options = options.Value.Kubernetes;
    private string? _lastHash;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        Reload();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.BindingsPollInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Reload();
        }
    }

    private void Reload()
    {
        var path = _options.BindingsPath;
        string? text = null;
        if (!string.IsNullOrEmpty(path))
        {
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                text = null;
            }
            catch (IOException ex)
            {
                logger.LogWarning("Could not read the bindings file {Path}, keeping the current bindings: {Error}", path, ex.Message);
                return;
            }
        }

        var hash = text is null ? "missing" : Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        if (hash == _lastHash)
        {
            return;
        }

        if (text is null)
        {
            _lastHash = hash;
            logger.LogWarning("No bindings file at '{Path}' (MsiProxy:Kubernetes:BindingsPath): no pod may use any identity", path);
            registrations.SetBindings(BindingSet.Empty);
            return;
        }

        try
        {
            var bindings = BindingsParser.Parse(text);
            _lastHash = hash;
            registrations.SetBindings(bindings);
            logger.LogInformation("Loaded {Count} pod identity bindings from {Path}", bindings.Bindings.Count, path);
        }
        catch (FormatException ex)
        {
            _lastHash = hash; // report a broken file once, not on every poll
            logger.LogError("Ignoring the bindings file {Path}, keeping the previous bindings: {Error}", path, ex.Message);
        }
    }
}
