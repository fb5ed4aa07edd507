using System.Diagnostics.CodeAnalysis;

namespace MsiProxy.Clients;

/// <summary>
/// One entry of a client's allowed identities: <c>client_id=&lt;guid&gt;</c>, <c>object_id=&lt;guid&gt;</c>,
/// <c>msi_res_id=/subscriptions/…</c>, a bare GUID (client id), a bare <c>/subscriptions/…</c> path (resource id),
/// <c>*</c> (any identity) or <c>system</c> (the VM's system-assigned identity).
/// </summary>
public sealed record IdentityBinding
{
    private IdentityBinding(bool any, IdentitySelector selector)
    {
        IsAny = any;
        Selector = selector;
    }

    public static readonly IdentityBinding Any = new(true, IdentitySelector.SystemAssigned);
    public static readonly IdentityBinding System = new(false, IdentitySelector.SystemAssigned);

    public bool IsAny { get; }

    /// <summary>The identity this entry names (system-assigned for <c>*</c> and <c>system</c>).</summary>
    public IdentitySelector Selector { get; }

    public static IdentityBinding For(IdentitySelector selector) => new(false, selector);

    public bool Allows(IdentitySelector requested) => IsAny || Selector == requested;

    public static bool TryParse(string? text, [NotNullWhen(true)] out IdentityBinding? binding, out string? error)
    {
        binding = null;
        error = null;
        var value = text?.Trim() ?? "";
        if (value.Length == 0)
        {
            error = "an identity entry is empty";
            return false;
        }

        if (value == "*")
        {
            binding = Any;
            return true;
        }

        if (value.Equals("system", StringComparison.OrdinalIgnoreCase))
        {
            binding = System;
            return true;
        }

        var equals = value.IndexOf('=', StringComparison.Ordinal);
        if (equals < 0)
        {
            if (Guid.TryParse(value, out _))
            {
                binding = For(IdentitySelector.Create(SelectorKind.ClientId, value));
                return true;
            }

            if (IsResourceId(value))
            {
                binding = For(IdentitySelector.Create(SelectorKind.ResourceId, value));
                return true;
            }

            error = $"'{value}' is not a GUID, an ARM resource id, '*', 'system' or a typed entry such as client_id=<guid>";
            return false;
        }

        var type = value[..equals].Trim().ToLowerInvariant();
        var id = value[(equals + 1)..].Trim();
        switch (type)
        {
            case "client_id" or "object_id" when Guid.TryParse(id, out _):
                binding = For(IdentitySelector.Create(type == "client_id" ? SelectorKind.ClientId : SelectorKind.ObjectId, id));
                return true;
            case "client_id" or "object_id":
                error = $"'{value}': {type} must be a GUID";
                return false;
            case "msi_res_id" or "mi_res_id" when IsResourceId(id):
                binding = For(IdentitySelector.Create(SelectorKind.ResourceId, id));
                return true;
            case "msi_res_id" or "mi_res_id":
                error = $"'{value}': {type} must be an ARM resource id starting with /subscriptions/";
                return false;
            default:
                error = $"'{value}': unknown identity type '{type}' (use client_id, object_id or msi_res_id)";
                return false;
        }
    }

    public static IReadOnlyList<IdentityBinding> ParseAll(IEnumerable<string> entries)
    {
        var result = new List<IdentityBinding>();
        foreach (var entry in entries)
        {
            if (!TryParse(entry, out var binding, out var error))
            {
                throw new FormatException(error);
            }

            result.Add(binding);
        }

        return result;
    }

    private static bool IsResourceId(string value) =>
        value.StartsWith("/subscriptions/", StringComparison.OrdinalIgnoreCase) && value.Length > "/subscriptions/".Length
        && !value.Any(char.IsWhiteSpace);

    public override string ToString() => IsAny ? "*" : Selector.ToString();
}
