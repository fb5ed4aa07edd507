using Azure.Core;
using Azure.Identity;
using Microsoft.Identity.Client;
using AzureIdentityId = Azure.Identity.ManagedIdentityId;
using MsalIdentityId = Microsoft.Identity.Client.AppConfig.ManagedIdentityId;

namespace MsiProxy.Tests.SdkClient;

/// <summary>The .NET clients, used the way applications use them.</summary>
internal static class TokenClients
{
    public static async Task<(string Token, DateTimeOffset ExpiresOn)> AzureIdentityAsync(ClientArguments a)
    {
        var credential = new ManagedIdentityCredential(AzureIdentityIdOf(a));
        var token = await credential.GetTokenAsync(new TokenRequestContext([Scope(a)]));
        return (token.Token, token.ExpiresOn);
    }

    /// <summary>
    /// DefaultAzureCredential with every credential but managed identity excluded through its options, not through
    /// AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential: that variable makes it skip the header-less IMDS probe that
    /// the chained credential sends first, which is the behaviour under test.
    /// </summary>
    public static async Task<(string Token, DateTimeOffset ExpiresOn)> DefaultAzureCredentialAsync(ClientArguments a)
    {
        var options = new DefaultAzureCredentialOptions
        {
            ExcludeEnvironmentCredential = true,
            ExcludeWorkloadIdentityCredential = true,
            ExcludeManagedIdentityCredential = false,
#pragma warning disable CS0618 // deprecated, but still in the chain unless excluded
            ExcludeSharedTokenCacheCredential = true,
#pragma warning restore CS0618
            ExcludeVisualStudioCredential = true,
            ExcludeVisualStudioCodeCredential = true,
            ExcludeAzureCliCredential = true,
            ExcludeAzurePowerShellCredential = true,
            ExcludeAzureDeveloperCliCredential = true,
            ExcludeInteractiveBrowserCredential = true,
            ExcludeBrokerCredential = true,
        };
        options.ManagedIdentityClientId = a.ClientId;
        options.ManagedIdentityResourceId = a.ResourceId is null ? null : new ResourceIdentifier(a.ResourceId);

        var credential = new DefaultAzureCredential(options);
        var token = await credential.GetTokenAsync(new TokenRequestContext([Scope(a)]));
        return (token.Token, token.ExpiresOn);
    }

    public static async Task<(string Token, DateTimeOffset ExpiresOn)> MsalAsync(ClientArguments a)
    {
        var id = a.ClientId is not null ? MsalIdentityId.WithUserAssignedClientId(a.ClientId)
            : a.ObjectId is not null ? MsalIdentityId.WithUserAssignedObjectId(a.ObjectId)
            : a.ResourceId is not null ? MsalIdentityId.WithUserAssignedResourceId(a.ResourceId)
            : MsalIdentityId.SystemAssigned;
        var app = ManagedIdentityApplicationBuilder.Create(id).Build();
        var result = await app.AcquireTokenForManagedIdentity(a.Resource).ExecuteAsync();
        return (result.AccessToken, result.ExpiresOn);
    }

    private static AzureIdentityId AzureIdentityIdOf(ClientArguments a) =>
        a.ClientId is not null ? AzureIdentityId.FromUserAssignedClientId(a.ClientId)
        : a.ObjectId is not null ? AzureIdentityId.FromUserAssignedObjectId(a.ObjectId)
        : a.ResourceId is not null ? AzureIdentityId.FromUserAssignedResourceId(new ResourceIdentifier(a.ResourceId))
        : AzureIdentityId.SystemAssigned;

    /// <summary>Azure.Identity takes scopes: "R/.default" is sent as resource=R.</summary>
    private static string Scope(ClientArguments a) =>
        a.Resource.EndsWith("/.default", StringComparison.Ordinal) ? a.Resource : a.Resource.TrimEnd('/') + "/.default";
}
