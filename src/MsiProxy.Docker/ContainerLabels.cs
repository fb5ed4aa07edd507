using System.Net;
using MsiProxy.Clients;

namespace MsiProxy.Docker;

/// <summary>What a client container's labels ask for, or why they cannot be used.</summary>
internal sealed record ClientSpec(string ContainerId, string Name, IPAddress? Address, IReadOnlyList<IdentityBinding> Identities,
    IReadOnlyList<string> Prefetch, int Pid, string? Problem)
{
    public ProofPolicy Proof { get; init; }
    public IdentityHeaderDigest? IdentityHeader { get; init; }

    public bool SameRegistration(ClientSpec other) =>
        Name == other.Name && Equals(Address, other.Address) && Identities.SequenceEqual(other.Identities) && Prefetch.SequenceEqual(other.Prefetch)
        && Proof == other.Proof && Equals(IdentityHeader, other.IdentityHeader);
}

/// <summary>Reads the monitor's labels (prefix configurable, <c>msi-proxy</c> by default).</summary>
internal sealed class ContainerLabels(DockerMonitorOptions options)
{
    public const string RoleMsiServiceClient = "msiserviceclient";
    public const string RoleProxy = "proxy";

    public bool IsClient(ContainerInfo container) =>
        container.Labels.TryGetValue(options.LabelClient, out var value) && string.Equals(value.Trim(), "true", StringComparison.OrdinalIgnoreCase);

    public bool HasRole(ContainerInfo container, string role) =>
        container.Labels.TryGetValue(options.LabelRole, out var value) && string.Equals(value.Trim(), role, StringComparison.OrdinalIgnoreCase);

    /// <summary>The client a labelled container asks to be; <see cref="ClientSpec.Problem"/> says why it cannot be registered.</summary>
    public ClientSpec ReadClient(ContainerInfo container)
    {
        var name = container.Labels.TryGetValue(options.LabelName, out var labelled) && !string.IsNullOrWhiteSpace(labelled)
            ? labelled.Trim() : container.Name;
        var address = container.AddressOn(options.Network);
        var identities = new List<IdentityBinding>();
        var problems = new List<string>();
        if (ClientNames.Problem(name) is { } nameProblem)
        {
            problems.Add($"the client name {nameProblem}");
        }

        if (address is null)
        {
            problems.Add(options.Network is null
                ? $"the container has {container.Networks.Count} networks with an address; set MsiProxy:Docker:Network"
                : $"the container has no address on network '{options.Network}'");
        }

        foreach (var entry in Split(container.Labels.GetValueOrDefault(options.LabelIdentities)))
        {
            if (IdentityBinding.TryParse(entry, out var binding, out var error))
            {
                identities.Add(binding);
            }
            else
            {
                problems.Add($"label {options.LabelIdentities}: {error}");
            }
        }

        var prefetch = new List<string>();
        foreach (var resource in Split(container.Labels.GetValueOrDefault(options.LabelPrefetch)))
        {
            if (Uri.TryCreate(resource, UriKind.Absolute, out _))
            {
                prefetch.Add(resource);
            }
            else
            {
                problems.Add($"label {options.LabelPrefetch}: '{resource}' is not an absolute resource URI");
            }
        }

        // A container started with IDENTITY_HEADER speaks the App Service protocol: by default its secret is then part of
        // its proof, so a neighbour spoofing its address gets nothing. The proof label can say otherwise.
        var proof = container.IdentityHeader is null ? ProofPolicy.Address : ProofPolicy.AddressAndSecret;
        if (container.Labels.TryGetValue(options.LabelProof, out var proofLabel) && !ProofPolicies.TryParse(proofLabel, out proof))
        {
            problems.Add($"label {options.LabelProof}: '{proofLabel}' is not a proof policy ({ProofPolicies.Names})");
        }
        else if (proof.NeedsSecret() && container.IdentityHeader is null)
        {
            problems.Add($"label {options.LabelProof}: '{proof.Name()}' needs IDENTITY_HEADER in the container's environment");
        }

        return new ClientSpec(container.Id, name, address, identities, prefetch, container.Pid,
            problems.Count == 0 ? null : string.Join("; ", problems))
        {
            Proof = proof,
            IdentityHeader = proof.NeedsSecret() ? container.IdentityHeader : null,
        };
    }

    /// <summary>The upstream URL of an msiserviceclient container, or null when it has no usable address.</summary>
    public string? UpstreamUrl(ContainerInfo container)
    {
        if (container.AddressOn(options.Network) is not { } address)
        {
            return null;
        }

        var port = container.Labels.TryGetValue(options.LabelPort, out var text) && int.TryParse(text, out var labelled) && labelled is > 0 and < 65536
            ? labelled : options.UpstreamPort;
        var host = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        return $"http://{host}:{port}";
    }

    private static string[] Split(string? list) =>
        (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
