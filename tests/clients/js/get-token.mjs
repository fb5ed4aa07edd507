// Gets one managed-identity token with the real @azure/identity ManagedIdentityCredential and prints one JSON line:
//   {"ok":true,"token":"...","expiresOn":"<ISO 8601>"}  exit 0
//   {"ok":false,"errorType":"...","message":"..."}       exit 1
// The endpoint comes from AZURE_POD_IDENTITY_AUTHORITY_HOST, set by the test runner (never 169.254.169.254).
// Usage: node get-token.mjs --sdk azure-identity --resource R [--client-id G | --object-id G | --resource-id R]
import { ManagedIdentityCredential } from "@azure/identity";

function parseArgs(argv) {
  const known = new Set(["--sdk", "--resource", "--client-id", "--object-id", "--resource-id"]);
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!known.has(name) || value === undefined) {
      throw new Error(`Unknown or incomplete argument '${name}'`);
    }
    args[name.slice(2)] = value;
  }
  if (!args.resource) throw new Error("--resource is required");
  if ((args.sdk ?? "azure-identity") !== "azure-identity") throw new Error(`Unsupported --sdk '${args.sdk}' (js supports azure-identity)`);
  const selectors = ["client-id", "object-id", "resource-id"].filter((k) => args[k]);
  if (selectors.length > 1) throw new Error("Give at most one of --client-id, --object-id, --resource-id");
  return args;
}

function credentialFor(args) {
  if (args["client-id"]) return new ManagedIdentityCredential({ clientId: args["client-id"] });
  if (args["object-id"]) return new ManagedIdentityCredential({ objectId: args["object-id"] });
  if (args["resource-id"]) return new ManagedIdentityCredential({ resourceId: args["resource-id"] });
  return new ManagedIdentityCredential();
}

function print(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

try {
  const args = parseArgs(process.argv.slice(2));
  const scope = args.resource.endsWith("/.default") ? args.resource : `${args.resource.replace(/\/$/, "")}/.default`;
  const token = await credentialFor(args).getToken(scope);
  print({ ok: true, token: token.token, expiresOn: new Date(token.expiresOnTimestamp).toISOString() });
  process.exitCode = 0;
} catch (error) {
  print({ ok: false, errorType: error?.name ?? typeof error, message: String(error?.message ?? error) });
  process.exitCode = 1;
}
