import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";

/** The only role the pods get: read objects, in the model's bucket alone. */
export const MODEL_READER_ROLE = "roles/storage.objectViewer";

/** The bucket of a `gs://bucket/object` URI; undefined for any other URI, or none. */
export function gcsBucket(uri: string | undefined): string | undefined {
  return uri?.match(/^gs:\/\/([^/]+)\/./)?.[1];
}

/** Arguments of {@link ModelReader}. */
export interface ModelReaderArgs {
  /** Google Cloud project the service account lives in. Required. */
  readonly project: pulumi.Input<string>;
  /** Bucket holding the model; the account may read objects in it and nowhere else. Required. */
  readonly bucket: pulumi.Input<string>;
  /** The cluster's Workload Identity pool, `<project>.svc.id.goog`. Required. */
  readonly workloadPool: pulumi.Input<string>;
  /** Namespace of the Kubernetes ServiceAccount the pods run as. Required. */
  readonly namespace: pulumi.Input<string>;
  /** Name of that Kubernetes ServiceAccount. Required. */
  readonly serviceAccountName: pulumi.Input<string>;
  /** Account ID of the Google service account; default "mlscore-scoring". */
  readonly accountId?: pulumi.Input<string>;
}

/**
 * A Google service account that may read the model's bucket and nothing else, which one
 * Kubernetes ServiceAccount may act as through Workload Identity: the pods get a short-lived
 * token from the GKE metadata server instead of a key file. The IAM API must be on: depend on the
 * {@link GkeCluster}, which enables it.
 */
export class ModelReader extends pulumi.ComponentResource {
  /** Email of the Google service account, for the `iam.gke.io/gcp-service-account` annotation. */
  readonly email: pulumi.Output<string>;

  constructor(name: string, args: ModelReaderArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("mlscore:index:ModelReader", name, {}, opts);

    const account = new gcp.serviceaccount.Account(
      `${name}-account`,
      {
        project: args.project,
        accountId: args.accountId ?? "mlscore-scoring",
        displayName: "mlscore scoring pods",
        description: pulumi.interpolate`Reads the scoring model from gs://${args.bucket}`,
      },
      { parent: this },
    );

    // A bucket-level grant, not a project-level one: the pods can read no other bucket.
    new gcp.storage.BucketIAMMember(
      `${name}-bucket-viewer`,
      { bucket: args.bucket, role: MODEL_READER_ROLE, member: account.member },
      { parent: this },
    );

    new gcp.serviceaccount.IAMMember(
      `${name}-workload-identity`,
      {
        serviceAccountId: account.name,
        role: "roles/iam.workloadIdentityUser",
        member: pulumi.interpolate`serviceAccount:${args.workloadPool}[${args.namespace}/${args.serviceAccountName}]`,
      },
      { parent: this },
    );

    this.email = account.email;
    this.registerOutputs({ email: this.email });
  }
}
