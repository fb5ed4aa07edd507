using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Requests;
using MsiProxy.Upstreams;

namespace MsiProxy.Configuration;

/// <summary>
/// Start-up validation: a bad address, CIDR, URL or path stops the process with a message that names the key and the
/// value, instead of a proxy that quietly refuses (or worse, allows) the wrong callers.
/// </summary>
internal sealed class MsiProxyOptionsValidator : IValidateOptions<MsiProxyOptions>
{
    public ValidateOptionsResult Validate(string? name, MsiProxyOptions options)
    {
        var errors = new List<string>();
        errors.AddRange(UpstreamSet.Validate(options.EffectiveUpstreams));

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Clients.Count; i++)
        {
            var client = options.Clients[i];
            var prefix = $"MsiProxy:Clients:{i}";
            if (string.IsNullOrWhiteSpace(client.Name))
            {
                errors.Add($"{prefix}:Name is required");
            }
            else if (ClientNames.Problem(client.Name) is { } problem)
            {
                errors.Add($"{prefix}:Name {problem}");
            }
            else if (!names.Add(client.Name))
            {
                errors.Add($"{prefix}:Name = '{client.Name}' is used by more than one client");
            }

            if (!AddressRange.TryParse(client.Address, out var address))
            {
                errors.Add($"{prefix}:Address = '{client.Address}' is not an IPv4/IPv6 address or CIDR block");
            }
            else if (address.IsEverything)
            {
                errors.Add($"{prefix}:Address = '{client.Address}' is every address: any caller would get this client's identities");
            }

            for (var j = 0; j < client.Identities.Count; j++)
            {
                if (!IdentityBinding.TryParse(client.Identities[j], out _, out var error))
                {
                    errors.Add($"{prefix}:Identities:{j} = '{client.Identities[j]}': {error}");
                }
            }

            if (!ProofPolicies.TryRead(client.Proof, client.IdentityHeaderSha256, out _, out _, out var proofError))
            {
                errors.Add($"{prefix}:{char.ToUpperInvariant(proofError[0])}{proofError[1..]}");
            }

            AddResourceErrors(errors, $"{prefix}:Prefetch", client.Prefetch);
            for (var j = 0; j < client.Endpoints.Count; j++)
            {
                if (ImdsEndpoints.ByName(client.Endpoints[j]) is null)
                {
                    errors.Add($"{prefix}:Endpoints:{j} = '{client.Endpoints[j]}' is not an endpoint ({EndpointAccess.Names})");
                }
            }
        }

        EndpointAccess.Resolve(options, out var endpointErrors);
        errors.AddRange(endpointErrors);
        Positive(errors, "MsiProxy:HoldTimeout", options.HoldTimeout);

        AddResourceErrors(errors, "MsiProxy:Prefetch:Resources", options.Prefetch.Resources);
        Positive(errors, "MsiProxy:Resilience:AttemptTimeout", options.Resilience.AttemptTimeout);
        Positive(errors, "MsiProxy:Resilience:RequestBudget", options.Resilience.RequestBudget);
        Positive(errors, "MsiProxy:Resilience:RefreshBudget", options.Resilience.RefreshBudget);
        Positive(errors, "MsiProxy:Health:Interval", options.Health.Interval);
        Positive(errors, "MsiProxy:Shutdown:DrainTimeout", options.Shutdown.DrainTimeout);
        if (options.Shutdown.ReadinessDelay < TimeSpan.Zero || options.Shutdown.ReadinessDelay >= options.Shutdown.DrainTimeout)
        {
            errors.Add($"MsiProxy:Shutdown:ReadinessDelay = {options.Shutdown.ReadinessDelay} must be at least 0 and less than "
                + $"MsiProxy:Shutdown:DrainTimeout ({options.Shutdown.DrainTimeout}): it is part of it, and requests in flight need the rest");
        }

        if (options.StateFile is { Length: > 0 } stateFile && (stateFile.IndexOfAny(Path.GetInvalidPathChars()) >= 0
                || string.IsNullOrEmpty(Path.GetFileName(stateFile)) || Directory.Exists(stateFile)))
        {
            errors.Add($"MsiProxy:StateFile = '{stateFile}' is not a file path such as /var/lib/msi-proxy/state.json");
        }
        Positive(errors, "MsiProxy:Health:Timeout", options.Health.Timeout);
        if (options.Resilience.MaxConcurrency < 1)
        {
            errors.Add($"MsiProxy:Resilience:MaxConcurrency = {options.Resilience.MaxConcurrency} must be at least 1");
        }

        if (options.Resilience.RequestsPerSecond < 1)
        {
            errors.Add($"MsiProxy:Resilience:RequestsPerSecond = {options.Resilience.RequestsPerSecond} must be at least 1");
        }

        if (options.Cache.MaxEntries < 1)
        {
            errors.Add($"MsiProxy:Cache:MaxEntries = {options.Cache.MaxEntries} must be at least 1");
        }

        if (options.Cache.RefreshAfter is <= 0 or > 1)
        {
            errors.Add($"MsiProxy:Cache:RefreshAfter = {options.Cache.RefreshAfter} must be in (0, 1]");
        }

        if (options.Cache.MinimumRemainingLifetime < TimeSpan.Zero)
        {
            errors.Add($"MsiProxy:Cache:MinimumRemainingLifetime = {options.Cache.MinimumRemainingLifetime} must not be negative");
        }

        if (options.Management.ApiKeyFile is { Length: > 0 } file && !File.Exists(file))
        {
            errors.Add($"MsiProxy:Management:ApiKeyFile = '{file}' does not exist");
        }

        if (options.Management.ApiKey is { Length: > 0 and < 16 })
        {
            errors.Add("MsiProxy:Management:ApiKey must be at least 16 characters");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void AddResourceErrors(List<string> errors, string key, List<string> resources)
    {
        for (var i = 0; i < resources.Count; i++)
        {
            if (!Uri.TryCreate(resources[i], UriKind.Absolute, out _))
            {
                errors.Add($"{key}:{i} = '{resources[i]}' is not an absolute resource URI");
            }
        }
    }

    private static void Positive(List<string> errors, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            errors.Add($"{key} = {value} must be positive");
        }
    }
}
