namespace MsiProxy.Tests.SdkClient;

/// <summary>The command line: which SDK (azure-identity, dac, msal), which resource, at most one user-assigned selector.</summary>
internal sealed record ClientArguments(string Sdk, string Resource, string? ClientId, string? ObjectId, string? ResourceId)
{
    public static ClientArguments Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i += 2)
        {
            if (args[i] is not ("--sdk" or "--resource" or "--client-id" or "--object-id" or "--resource-id") || i + 1 >= args.Length)
            {
                throw new ArgumentException($"Unknown or incomplete argument '{args[i]}'");
            }

            values[args[i][2..]] = args[i + 1];
        }

        var sdk = values.GetValueOrDefault("sdk", "azure-identity");
        if (sdk is not ("azure-identity" or "dac" or "msal"))
        {
            throw new ArgumentException($"Unsupported --sdk '{sdk}' (azure-identity, dac or msal)");
        }

        if (!values.TryGetValue("resource", out var resource))
        {
            throw new ArgumentException("--resource is required");
        }

        var parsed = new ClientArguments(
            sdk, resource, values.GetValueOrDefault("client-id"), values.GetValueOrDefault("object-id"), values.GetValueOrDefault("resource-id"));
        if (new[] { parsed.ClientId, parsed.ObjectId, parsed.ResourceId }.Count(v => v is not null) > 1)
        {
            throw new ArgumentException("Give at most one of --client-id, --object-id, --resource-id");
        }

        if (sdk == "dac" && parsed.ObjectId is not null)
        {
            throw new ArgumentException("DefaultAzureCredentialOptions selects a user-assigned identity by client id or resource id only");
        }

        return parsed;
    }
}
