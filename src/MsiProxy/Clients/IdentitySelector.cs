namespace MsiProxy.Clients;

public enum SelectorKind
{
    /// <summary>No selector: the VM's system-assigned identity answers.</summary>
    SystemAssigned,
    ClientId,
    ObjectId,
    ResourceId,
}

/// <summary>
/// Which managed identity a token is for, as IMDS selects it. Values are normalised to lower case because IMDS
/// compares GUIDs and ARM resource ids case-insensitively.
/// </summary>
public readonly record struct IdentitySelector(SelectorKind Kind, string Value)
{
    public static readonly IdentitySelector SystemAssigned = new(SelectorKind.SystemAssigned, "");

    public static IdentitySelector Create(SelectorKind kind, string value) =>
        kind == SelectorKind.SystemAssigned ? SystemAssigned : new(kind, value.Trim().ToLowerInvariant());

    /// <summary>The IMDS query parameter that carries this selector, or null for system-assigned.</summary>
    public string? QueryParameter => Kind switch
    {
        SelectorKind.ClientId => "client_id",
        SelectorKind.ObjectId => "object_id",
        SelectorKind.ResourceId => "msi_res_id",
        _ => null,
    };

    public override string ToString() => Kind == SelectorKind.SystemAssigned ? "system" : $"{QueryParameter}={Value}";
}
