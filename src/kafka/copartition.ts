import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

/**
 * Gives each group member the same partition numbers of every subscribed topic. The requests,
 * predictions and shadow topics are keyed by the entity key with the same partitioner and the same
 * partition count, so partition p of each holds the same entities: a drift replica that owns p
 * sees all three records of a request and can join them by request id without talking to the
 * other replicas. (kafkajs's default round-robin assignor would scatter them.)
 */
export const CoPartitionAssigner: PartitionAssigner = ({ cluster }) => ({
  name: 'StreamscoreCoPartition',
  version: 0,
  assign({ members, topics }) {
    const memberIds = members.map(({ memberId }) => memberId).sort();
    const assignment = new Map<string, Record<string, number[]>>(memberIds.map((id) => [id, {}]));
    for (const topic of topics) {
      for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
        const owner = assignment.get(memberIds[partitionId % memberIds.length]!)!;
        (owner[topic] ??= []).push(partitionId);
      }
    }
    return Promise.resolve(
      memberIds.map((memberId) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: assignment.get(memberId)!,
          userData: Buffer.alloc(0),
        }),
      })),
    );
  },
  protocol({ topics }) {
    return {
      name: 'StreamscoreCoPartition',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    };
  },
});
