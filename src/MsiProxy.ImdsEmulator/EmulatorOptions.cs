namespace MsiProxy.ImdsEmulator;

/// <summary>
/// What the emulated VM looks like and how strict the emulated IMDS is. Bound from the "Emulator" configuration
/// section by the standalone program; built in code by tests.
/// </summary>
public sealed class EmulatorOptions
{
    /// <summary>Whether the VM has a system-assigned identity (a request without a selector uses it).</summary>
    public bool SystemAssigned { get; set; } = true;

    public string SystemClientId { get; set; } = "6f2a1b4c-8d3e-4f50-9a61-7b8c9d0e1f23";

    public string SystemObjectId { get; set; } = "0d9e8f7a-6b5c-4d3e-8f21-a0b1c2d3e4f5";

    public string TenantId { get; set; } = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    public List<UserAssignedIdentity> UserAssigned { get; set; } = [];

    /// <summary>Lifetime of a freshly issued token; real IMDS hands out about 24 h.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(24);

    public LimitOptions Limits { get; set; } = new();

    /// <summary>IMDS drops requests that carry X-Forwarded-For; the emulator answers them with 400 when set.</summary>
    public bool RejectForwardedFor { get; set; } = true;

    /// <summary>
    /// When false the token endpoint also answers requests without <c>Metadata: true</c> (the header-less probe of
    /// Azure.Identity's DefaultAzureCredential). Weakens the SSRF guard, so it is opt-in.
    /// </summary>
    public bool RequireMetadataHeader { get; set; } = true;

    /// <summary>Value of the Server response header; real IMDS sends IMDS/150.870.65.xxxx.</summary>
    public string ServerHeader { get; set; } = "IMDS/150.870.65.1253";

    public string SubscriptionId { get; set; } = "8d10da13-8125-4ba9-a717-bf7490507b3d";

    public string ResourceGroup { get; set; } = "msiproxy-rg";

    public string VmName { get; set; } = "msiproxy-vm";

    public string VmId { get; set; } = "02aab8a4-74ef-476e-8182-f6d2ba4166a6";

    public string Location { get; set; } = "westeurope";

    public string PrivateIpAddress { get; set; } = "10.0.0.4";

    /// <summary>The VM's user data (base64, as IMDS serves it at /metadata/instance/compute/userData).</summary>
    public string UserData { get; set; } = Convert.ToBase64String("msiproxy-emulator user data: db-password=hunter2"u8);

    /// <summary>Faults enqueued when the emulator starts (e.g. from --Emulator:Faults:0:Status=503).</summary>
    public List<FaultRule> Faults { get; set; } = [];

    /// <summary>ARM resource id of the VM itself (the system-assigned identity's xms_mirid claim).</summary>
    public string VmResourceId =>
        $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}/providers/Microsoft.Compute/virtualMachines/{VmName}";
}

/// <summary>A user-assigned managed identity attached to the emulated VM.</summary>
public sealed record UserAssignedIdentity(string ClientId, string ObjectId, string ResourceId)
{
    /// <summary>Parameterless form for configuration binding (--Emulator:UserAssigned:0:ClientId=...).</summary>
    public UserAssignedIdentity() : this(string.Empty, string.Empty, string.Empty)
    {
    }
}

/// <summary>The managed-identity category limits IMDS documents: 20 requests/s and 5 concurrent requests.</summary>
public sealed class LimitOptions
{
    public bool Enabled { get; set; } = true;

    public int RequestsPerSecond { get; set; } = 20;

    public int MaxConcurrency { get; set; } = 5;
}
